"""Bird's-eye view: ego at the centre, heading up, boxes and trajectories where they belong."""

import numpy as np
import pytest

from sim_eval.render.bev import BevPalette, BevRenderer
from sim_eval.render.example_scene import example_road_scene
from sim_eval.render.scene import Box, GroundPolygon, RenderScene, TrafficLightHead

PAL = BevPalette()


def _mask(img: np.ndarray, rgb) -> np.ndarray:
    return np.all(img == np.asarray(rgb, dtype=np.uint8), axis=2)


@pytest.mark.parametrize("yaw", [0.0, 1.1, -2.5])
def test_ego_at_the_centre_and_a_box_ahead_above_it(yaw):
    bev = BevRenderer(201, meters_per_px=0.2)
    x0, y0 = 30.0, -12.0
    fwd, left = np.array([np.cos(yaw), np.sin(yaw)]), np.array([-np.sin(yaw), np.cos(yaw)])
    ahead = Box(tuple(np.array([x0, y0]) + 15.0 * fwd), yaw, 4.5, 2.0, 1.5, color=(200, 30, 30))
    leftish = Box(tuple(np.array([x0, y0]) + 10.0 * left), yaw, 4.5, 2.0, 1.5, color=(30, 30, 200))
    img = bev.render(RenderScene((x0, y0, yaw), boxes=(ahead, leftish)))
    assert img.shape == (201, 201, 3) and img.dtype == np.uint8
    # The rear axle is at the centre; the ego footprint extends 4.05 m ahead and 1.13 m behind it.
    assert _mask(img, PAL.ego_rgb)[100 - 15:100 + 4, 100].sum() >= 15
    rows, cols = np.nonzero(_mask(img, (200, 30, 30)))
    assert abs(rows.mean() - (100 - 15.0 / 0.2)) <= 1.0 and abs(cols.mean() - 100) <= 1.0
    rows, cols = np.nonzero(_mask(img, (30, 30, 200)))
    assert abs(rows.mean() - 100) <= 1.0 and abs(cols.mean() - (100 - 10.0 / 0.2)) <= 1.0


def test_world_to_pixels_and_scale_options():
    bev = BevRenderer((100, 200), extent_m=50.0)
    assert bev.meters_per_px == pytest.approx(0.25)
    px = bev.world_to_pixels(np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 5.0]]), (0.0, 0.0, 0.0))
    np.testing.assert_allclose(px, [[99.5, 49.5], [99.5, 49.5 - 40.0], [99.5 - 20.0, 49.5]])
    world = BevRenderer(100, meters_per_px=1.0, ego_centered=False, center_xy=(50.0, 50.0))
    px = world.world_to_pixels(np.array([[50.0, 50.0], [60.0, 50.0], [50.0, 60.0]]), (0.0, 0.0, 1.0))
    np.testing.assert_allclose(px, [[49.5, 49.5], [59.5, 49.5], [49.5, 39.5]])  # x right, y up
    with pytest.raises(ValueError, match="not both"):
        BevRenderer(100, meters_per_px=1.0, extent_m=10.0)
    with pytest.raises(ValueError, match="center_xy"):
        BevRenderer(100, ego_centered=False)


def test_road_lights_trajectories_and_fans_are_drawn():
    bev = BevRenderer(160, meters_per_px=0.25)
    road = GroundPolygon(np.array([[-50.0, -3.5], [50.0, -3.5], [50.0, 3.5], [-50.0, 3.5]]), color=(70, 70, 74))
    light = TrafficLightHead((10.0, -5.0, 4.0), np.pi, "green")
    scene = RenderScene((0.0, 0.0, 0.0), ground=(road,), lights=(light,))
    plan = np.stack([np.linspace(0, 16, 9), np.zeros(9)], axis=1)
    fan = plan[None] + np.array([0.0, 1.0])[None, None] * np.linspace(-2, 2, 5)[:, None, None]
    img = bev.render(scene, trajectories={"plan": plan, "samples": fan}, colors={"plan": (255, 0, 255)},
                     legend=False)
    road_rows = np.nonzero(_mask(img, (70, 70, 74)).any(axis=1))[0]
    assert road_rows.min() == 0 and road_rows.max() == 159  # the road runs up the image
    plan_px = np.nonzero(_mask(img, (255, 0, 255)))
    assert plan_px[0].min() <= 79.5 - 15.0 / 0.25 + 2  # reaches 16 m ahead
    assert np.abs(plan_px[1] - 79.5).max() <= 3
    assert _mask(img, PAL.light_green_rgb).sum() > 5
    # Fan samples are thin cyan-ish lines; the one 2 m to the left runs up column 79.5 - 8.
    strip = img[20:75, 69:75].astype(int)
    cyan = (strip[..., 2] > strip[..., 0] + 40).any(axis=1)
    assert cyan.all()
    with pytest.raises(ValueError, match="trajectories\\['bad'\\]"):
        bev.render(scene, trajectories={"bad": np.zeros((4, 3))})


def test_bev_is_deterministic_on_a_full_scene():
    bev = BevRenderer((256, 192), meters_per_px=0.3)
    scene = example_road_scene(ego_s_m=20.0, curvature_1pm=1 / 150)
    a = bev.render(scene, trajectories={"plan": np.array([[0.0, 0.0], [10.0, 1.0]])})
    assert a.tobytes() == BevRenderer((256, 192), meters_per_px=0.3).render(
        scene, trajectories={"plan": np.array([[0.0, 0.0], [10.0, 1.0]])}).tobytes()
