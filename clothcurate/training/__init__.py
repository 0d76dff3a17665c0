"""Training and evaluation of the paper's segmentation models (torch only; no FiftyOne).

The pipeline, one module per step:

* ``data`` / ``augment`` read an export folder (docs/contracts.md) into tensors; ``split`` holds
  out each fold's validation images; ``sampling`` draws the training images (uniform or
  repeat-factor);
* ``models`` builds FPN / U-Net / LinkNet / PSPNet (segmentation-models-pytorch) and ``weights``
  loads ImageNet encoder weights offline;
* ``loop`` / ``distributed`` train one fold (optionally under DDP), ``run`` drives the 5 folds;
* ``postprocess`` applies the paper's opening step and ``metrics`` scores the predictions;
* ``writeback`` puts the out-of-fold predictions back into FiftyOne when it is reachable.

Importing this package imports nothing heavy; import the submodule you need.
"""
