from edge.app import EdgeApp
from edge.demo.site import COURIER_ID, SimulatedSite
import pytest
from edge.lockers.errors import WrongCode

async def test_exp(app: EdgeApp, site: SimulatedSite) -> None:
    for i in range(3):
        with pytest.raises(WrongCode) as e:
            await app.lockers.start_pickup("kiosk-1", "12345678")
        print(e.value.details)
