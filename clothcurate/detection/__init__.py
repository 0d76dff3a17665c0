"""Person detection for ``clothcurate predict``: a registry of detectors, each finding the people in
one photo as :class:`PersonBox` es (``[x, y, w, h]`` pixels, score, detector name), best first.

Registered here: ``ssdlite-pedestrian`` (:data:`DEFAULT_DETECTOR`: offline, OpenCV DNN), ``hog``
(OpenCV, a baseline), ``ssd`` and ``ssdlite`` (torchvision COCO, weights from the user's torch hub
cache only). A detector defined in another module registers with :func:`register_detector`.
What ``predict`` crops of a detector's boxes (which people, widened how far) is that detector's
:class:`BoxRule` (:mod:`.calibration`; ``ssdlite-pedestrian``'s is measured on CCP).

Example::

    from clothcurate.detection import create_detector
    people = create_detector("ssdlite-pedestrian").detect(photo_rgb)   # photo_rgb: (H, W, 3) uint8
    people[0].box, people[0].score                                     # (x, y, w, h), 0.99
"""

from clothcurate.detection.registry import (DETECTORS, Detector, PersonBox, create_detector,
                                            register_detector)
from clothcurate.detection.calibration import (BOX_RULES, BoxCalibration, BoxRule, SubjectRule, box_rule,
                                               people_to_crop, register_box_rule)
# imported for their registrations
from clothcurate.detection import hog, ssdlite_pedestrian, torchvision_ssd  # noqa: E402,F401  isort: skip

#: the detector ``predict`` uses unless told otherwise: it works offline, without weights to fetch
DEFAULT_DETECTOR = "ssdlite-pedestrian"

__all__ = ["DETECTORS", "DEFAULT_DETECTOR", "Detector", "PersonBox", "create_detector", "register_detector",
           "BOX_RULES", "BoxCalibration", "BoxRule", "SubjectRule", "box_rule", "people_to_crop", "register_box_rule"]
