"""Face payment: recognition, liveness, gallery and payment decisions."""
