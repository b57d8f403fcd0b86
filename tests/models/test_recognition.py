"""Recognition end to end: detect → align → embed, on real photos changed in many ways.

Nine people: the six of t1, Grace Hopper, the astronaut (Eileen Collins), and Tom Hanks (given
as an aligned crop). Each photo is shifted, scaled, rotated, brightened, darkened, blurred and
JPEG re-encoded; every face found in a changed photo is traced back to its person through the
change's geometry and compared with everyone's reference embedding. The same-person and
different-person score distributions are printed at the end of the run; the manifest's
thresholds were chosen from them (see the comment in models/manifest.yaml).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from models.align import ARCFACE_TEMPLATE, align_face, similarity_transform
from models.embedder import FaceEmbedder
from models.faces import FaceModels
from models.manifest import Manifest
from tests.models.imaging import TRANSFORMS, apply, invert
from tests.models.support import REPORT, PreparedCache

GROUP_PHOTOS = ("t1", "grace_hopper", "astronaut")


@dataclass(frozen=True)
class Person:
    name: str
    photo: str
    centre: np.ndarray  # of the face box in the original photo
    width: float
    embedding: np.ndarray


@dataclass(frozen=True)
class Trial:
    person: str
    change: str
    scores: dict[str, float]  # against every person's reference embedding

    @property
    def genuine(self) -> float:
        return self.scores[self.person]

    @property
    def impostors(self) -> list[float]:
        return [score for name, score in self.scores.items() if name != self.person]


@dataclass(frozen=True)
class Study:
    people: list[Person]
    trials: list[Trial]
    missed: list[tuple[str, str]]  # (person, change) where the face was not found


def centre(box: tuple[float, float, float, float]) -> np.ndarray:
    return np.array([box[0] + box[2] / 2, box[1] + box[3] / 2])


@pytest.fixture(scope="session")
def study(face_models: FaceModels, photos: dict[str, np.ndarray]) -> Study:
    people: list[Person] = []
    for photo in GROUP_PHOTOS:
        faces = sorted(face_models.detector.detect(photos[photo]), key=lambda f: f.box[0])
        for i, face in enumerate(faces):
            people.append(
                Person(
                    name=f"{photo}[{i}]" if len(faces) > 1 else photo,
                    photo=photo,
                    centre=centre(face.box),
                    width=face.box[2],
                    embedding=face_models.embed_face(photos[photo], face),
                )
            )
    # Tom Hanks comes aligned already (insightface's crops use the same template).
    tom = photos["tom_hanks"]
    people.append(Person("tom_hanks", "tom_hanks", np.zeros(2), 0.0, embed(face_models, tom)))
    gallery = np.stack([person.embedding for person in people])

    trials: list[Trial] = []
    missed: list[tuple[str, str]] = []
    for photo in GROUP_PHOTOS:
        here = [person for person in people if person.photo == photo]
        for change, transform in TRANSFORMS.items():
            image, matrix = transform(photos[photo])
            back = invert(matrix)
            found: set[str] = set()
            for face in face_models.detector.detect(image):
                where = apply(back, centre(face.box)[None])[0]
                person = min(here, key=lambda p: float(np.linalg.norm(p.centre - where)))
                assert np.linalg.norm(person.centre - where) < person.width / 2, "a stray face"
                found.add(person.name)
                scores = gallery @ face_models.embed_face(image, face)
                trials.append(
                    Trial(
                        person.name,
                        change,
                        {p.name: float(s) for p, s in zip(people, scores, strict=True)},
                    )
                )
            missed += [(p.name, change) for p in here if p.name not in found]
    return Study(people, trials, missed)


def embed(face_models: FaceModels, crop: np.ndarray) -> np.ndarray:
    return face_models.embedder.embed(crop)


def test_every_person_is_found_after_every_change(study: Study) -> None:
    assert len(study.people) == 9
    assert study.missed == []
    assert len(study.trials) == 8 * len(TRANSFORMS)


def test_each_person_matches_themself_and_nobody_else(study: Study, manifest: Manifest) -> None:
    thresholds = manifest.recognizer().thresholds
    genuine = np.array([trial.genuine for trial in study.trials])
    impostors = np.array([score for trial in study.trials for score in trial.impostors])
    REPORT.extend(
        [
            f"same person ({len(genuine)} changed photos of 8 people): "
            f"min {genuine.min():.3f}, 5th percentile {np.percentile(genuine, 5):.3f}, "
            f"median {np.median(genuine):.3f}",
            f"different people ({len(impostors)} pairs): max {impostors.max():.3f}, "
            f"95th percentile {np.percentile(impostors, 95):.3f}, "
            f"median {np.median(impostors):.3f}",
            "lowest same-person scores: "
            + ", ".join(
                f"{t.person} {t.change} {t.genuine:.3f}"
                for t in sorted(study.trials, key=lambda t: t.genuine)[:3]
            ),
            f"manifest thresholds: match {thresholds.match}, margin {thresholds.margin}, "
            f"candidate {thresholds.candidate}",
        ]
    )
    low = [(t.person, t.change, round(t.genuine, 3)) for t in study.trials]
    assert all(score >= thresholds.match for *_, score in low), low
    assert impostors.max() < thresholds.candidate < thresholds.match


def test_the_best_match_wins_by_the_manifest_margin(study: Study, manifest: Manifest) -> None:
    margin = manifest.recognizer().thresholds.margin
    margins = []
    for trial in study.trials:
        ranked = sorted(trial.scores.items(), key=lambda item: -item[1])
        assert ranked[0][0] == trial.person, (trial.change, ranked[:2])
        margins.append(ranked[0][1] - ranked[1][1])
    REPORT.append(f"top-1 minus top-2: min {min(margins):.3f}, median {np.median(margins):.3f}")
    assert min(margins) >= margin


def test_the_reference_photos_of_different_people_are_far_apart(
    study: Study, manifest: Manifest
) -> None:
    gallery = np.stack([person.embedding for person in study.people])
    cosines = gallery @ gallery.T
    assert np.allclose(np.diag(cosines), 1.0, atol=1e-5)
    assert cosines[~np.eye(len(gallery), dtype=bool)].max() < manifest.recognizer().thresholds.match


def test_an_aligned_crop_and_detect_align_on_it_give_the_same_person(
    face_models: FaceModels, photos: dict[str, np.ndarray], manifest: Manifest
) -> None:
    crop = photos["tom_hanks"]
    (face,) = face_models.detector.detect(crop)
    # Our alignment reproduces the crop's own: the detected landmarks sit on the template.
    assert np.abs(face.landmarks - ARCFACE_TEMPLATE).max() < 6.0
    assert float(embed(face_models, crop) @ face_models.embed_face(crop, face)) > 0.9


def test_alignment_puts_the_landmarks_on_the_template(
    face_models: FaceModels, photos: dict[str, np.ndarray]
) -> None:
    (face,) = face_models.detector.detect(photos["grace_hopper"])
    aligned = align_face(photos["grace_hopper"], face.landmarks)
    assert aligned.shape == (112, 112, 3) and aligned.dtype == np.uint8
    matrix = similarity_transform(face.landmarks, ARCFACE_TEMPLATE)
    mapped = apply(matrix, face.landmarks)
    # Five points, four degrees of freedom: close to the template, not exactly on it.
    assert np.linalg.norm(mapped - ARCFACE_TEMPLATE, axis=1).max() < 4.0
    # Detected again in the crop, the landmarks are where the warp put them (a mirrored or
    # mis-scaled warp would be 20 px off; YuNet's own jitter on a 112 px face is ~5 px).
    (again,) = face_models.detector.detect(aligned)
    assert np.linalg.norm(again.landmarks - mapped, axis=1).max() < 8.0
    assert align_face(photos["grace_hopper"], face.landmarks, size=224).shape == (224, 224, 3)


@pytest.mark.parametrize(("degrees", "scale", "shift"), [(0, 1, (0, 0)), (30, 2.5, (40, -7))])
def test_similarity_transform_recovers_a_known_similarity(
    degrees: float, scale: float, shift: tuple[float, float]
) -> None:
    angle = np.radians(degrees)
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    known = np.hstack([rotation, np.array(shift, dtype=float)[:, None]])
    source = ARCFACE_TEMPLATE + 13.0
    assert np.allclose(similarity_transform(source, apply(known, source)), known, atol=1e-9)


def test_embeddings_are_unit_vectors_and_the_batch_agrees_with_one_by_one(
    face_models: FaceModels, photos: dict[str, np.ndarray]
) -> None:
    embedder = face_models.embedder
    crops = [
        align_face(photos["t1"], face.landmarks)
        for face in face_models.detector.detect(photos["t1"])
    ]
    batch = embedder.embed_batch(crops)
    assert embedder.dim == 128
    assert batch.shape == (6, 128) and batch.dtype == np.float32
    assert np.allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)
    single = np.stack([embedder.embed(crop) for crop in crops])
    assert np.allclose(batch, single, atol=1e-6)
    assert embedder.embed_batch([]).shape == (0, 128)


def test_the_default_input_spec_is_the_shipped_recognizer_s(
    prepared: PreparedCache, manifest: Manifest, face_models: FaceModels
) -> None:
    embedder = FaceEmbedder(prepared.models["sface-2021dec-int8bq"].path)
    assert embedder.input_spec == manifest.recognizer().input
    crop = np.random.default_rng(3).integers(0, 256, (112, 112, 3), dtype=np.uint8)
    assert np.allclose(embedder.embed(crop), face_models.embedder.embed(crop), atol=1e-6)
    # A crop of another size is resized to the network's input.
    big = np.repeat(np.repeat(crop, 2, axis=0), 2, axis=1)
    assert float(embedder.embed(big) @ embedder.embed(crop)) > 0.95
