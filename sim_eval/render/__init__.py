"""CPU renderers of the procedural driving world.

scene.py (input: RenderScene) · camera_model.py (PinholeCamera, projection, near-plane clipping) ·
camera.py (CameraRenderer: front-camera RGB + semantic labels) · bev.py (BevRenderer: top-down view for
reports) · video.py (mp4/GIF writing, side_by_side) · appearance.py (palette, domain randomisation) ·
labels.py (SemanticClass) · marking_geometry.py / solid_templates.py (geometry shared by the renderers) ·
example_scene.py (a hand-built road) · bench.py (benchmark_render).
"""
