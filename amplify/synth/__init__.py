"""`amplify synth`: a procedural, numpy-vectorised renderer of labelled driving clips.

scene.py (sample_scene) -> raster.py (geometry G-buffer, condition-free) -> shade.py (appearance
under a Condition) -> render.py (render_clip / render_twins: RGB + depth, semantic, instance,
boxes, poses) -> corpus.py (make_corpus: mp4 + label sidecars + dense ground truth + index).
contact_sheet.py draws one scene under every condition; bench.py measures frames per second.
"""
