"""Any model in: the embedding protocol (``protocol``), how a model is loaded and identified
for the cache (``source``), which tasks it can serve (``applicable``), and two examples
(``echoclip``: an open_clip image-text model on videos frame by frame; ``ecg_encoder``: a
plain PyTorch single-modality encoder)."""
