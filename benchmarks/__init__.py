"""autotimm benchmarks: speed, efficiency, memory, accuracy, evaluator and ONNX against torchvision.

Run ``python -m benchmarks [--quick | --full]`` (``make bench``); results go to benchmarks/RESULTS.md.
Modules: ``contenders`` (the detectors), ``timing`` (interleaved rounds), ``speed`` and ``flops``,
``memory`` (one process per contender), ``accuracy`` (equal-budget training), ``evaluator`` (mAP
time), ``onnx_speed``, ``report`` (tables, RESULTS.md), ``runner`` (sections and targets),
``loader_speed`` (the data loader).
"""
