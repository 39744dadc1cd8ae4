"""Camera renderer: structural facts of a pinhole view of hand-placed geometry."""

from dataclasses import replace

import numpy as np
import pytest

from sim_eval.render.appearance import DomainRandomization
from sim_eval.render.camera import CameraRenderer
from sim_eval.render.camera_model import PinholeCamera
from sim_eval.render.example_scene import example_road_scene
from sim_eval.render.labels import SemanticClass, colorize_labels
from sim_eval.render.scene import Box, GroundPolygon, Marking, RenderScene, TrafficLightHead

CAM = PinholeCamera.nuscenes_cam_front()  # 288 x 512, level, lens 1.70 m ahead of the axle, 1.51 m high
EGO = (0.0, 0.0, 0.0)
LENS_X = CAM.mount_forward_m
LANE_HALF_M = 1.75


def _road(x0: float = -30.0, x1: float = 400.0) -> GroundPolygon:
    return GroundPolygon(np.array([[x0, -7.0], [x1, -7.0], [x1, 7.0], [x0, 7.0]]), kind="road")


def _edges(x0: float = -30.0, x1: float = 400.0) -> tuple[Marking, Marking]:
    line = np.array([[x0, 0.0], [x1, 0.0]])
    return (Marking(line + [0.0, LANE_HALF_M], width_m=0.15), Marking(line - [0.0, LANE_HALF_M], width_m=0.15))


def _car_with_rear_at(distance_m: float, **kwargs) -> Box:
    """A car straight ahead whose rear face is `distance_m` in front of the lens."""
    length = 4.5
    return Box((LENS_X + distance_m + length / 2, 0.0), 0.0, length, 1.9, 1.4, **kwargs)


def _rows_cols(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = np.nonzero(mask)
    assert len(rows) > 0, "expected some pixels"
    return rows, cols


def test_level_horizon_at_cy_sky_above_ground_below():
    renderer = CameraRenderer(CAM)
    scene = RenderScene(EGO, ground=(_road(),))
    rgb, labels = renderer.render(scene), renderer.render_labels(scene)
    assert rgb.shape == (288, 512, 3) and rgb.dtype == np.uint8
    assert labels.shape == (288, 512) and labels.dtype == np.uint8
    cy = CAM.cy
    above = np.arange(288) < cy - 1
    below = np.arange(288) > cy + 1
    assert (labels[above] == SemanticClass.SKY).all()
    assert not (labels[below] == SemanticClass.SKY).any()
    # Sky is blue above the horizon; below, off-road ground at the sides and road in the middle.
    sky = rgb[above].reshape(-1, 3).astype(int)
    assert (sky[:, 2] > sky[:, 0] + 20).all()
    assert (labels[below][:, 0] == SemanticClass.GROUND).all() or (labels[below] == SemanticClass.ROAD).any()
    first_sky_free_row = int(np.argmax((labels != SemanticClass.SKY).all(axis=1)))
    assert abs(first_sky_free_row - cy) <= 1.0
    # The road polygon reaches (almost) to the horizon: far away, it is only a few pixels tall.
    road_rows = np.nonzero((labels == SemanticClass.ROAD).any(axis=1))[0]
    assert road_rows.min() - cy <= 3 and road_rows.max() == 287


def test_lane_edges_follow_perspective_and_meet_at_the_vanishing_point():
    renderer = CameraRenderer(CAM)
    labels = renderer.render_labels(RenderScene(EGO, ground=(_road(),), markings=_edges()))
    rows, left_u, right_u = [], [], []
    for v in range(int(CAM.cy) + 8, 288):
        cols = np.nonzero(labels[v] == SemanticClass.MARKING)[0]
        left, right = cols[cols < CAM.cx], cols[cols > CAM.cx]
        if len(left) and len(right):
            rows.append(v)
            left_u.append(left.mean())
            right_u.append(right.mean())
    rows, left_u, right_u = map(np.asarray, (rows, left_u, right_u))
    assert len(rows) > 100
    # Analytic oracle: ground row v lies at depth fy * h / (v - cy); a line at lateral y is at cx -+ fx*y/d.
    depth = CAM.fy * CAM.mount_height_m / (rows - CAM.cy)
    np.testing.assert_allclose(left_u, CAM.cx - CAM.fx * LANE_HALF_M / depth, atol=1.0)
    np.testing.assert_allclose(right_u, CAM.cx + CAM.fx * LANE_HALF_M / depth, atol=1.0)
    separation = right_u - left_u
    assert (np.diff(separation) > 0).all()  # wider towards the bottom (nearer)
    # Straight image lines through the samples meet at (cx, cy).
    kl, bl = np.polyfit(rows, left_u, 1)
    kr, br = np.polyfit(rows, right_u, 1)
    v_meet = (br - bl) / (kl - kr)
    assert v_meet == pytest.approx(CAM.cy, abs=1.0)
    assert kl * v_meet + bl == pytest.approx(CAM.cx, abs=1.0)


def test_car_ahead_is_centred_below_the_horizon_and_shrinks_with_distance():
    renderer = CameraRenderer(CAM)
    heights = {}
    for distance in (15.0, 30.0):
        labels = renderer.render_labels(RenderScene(EGO, ground=(_road(),), boxes=(_car_with_rear_at(distance),)))
        rows, cols = _rows_cols(labels == SemanticClass.VEHICLE)
        assert rows.min() > CAM.cy  # a 1.4 m tall car seen from 1.51 m stays under the horizon
        assert abs(0.5 * (cols.min() + cols.max()) - CAM.cx) <= 1.0
        assert rows.max() == pytest.approx(CAM.cy + CAM.fy * CAM.mount_height_m / distance, abs=1.0)
        # The lens is above the roof, so the top row is the roof's far edge.
        assert rows.min() == pytest.approx(CAM.cy + CAM.fy * (CAM.mount_height_m - 1.4) / (distance + 4.5), abs=1.0)
        # cv2 fills polygon outlines inclusively: up to one extra pixel on each side.
        assert cols.max() - cols.min() + 1 == pytest.approx(CAM.fx * 1.9 / distance, abs=2.5)
        heights[distance] = rows.max() - rows.min() + 1
    assert heights[30.0] / heights[15.0] == pytest.approx(0.5, abs=0.06)


def test_near_solids_hide_far_ones_and_hidden_faces_are_culled():
    renderer = CameraRenderer(CAM)
    near = _car_with_rear_at(15.0, color=(200, 20, 20))
    far = _car_with_rear_at(30.0, color=(20, 20, 200))
    for boxes in ((near, far), (far, near)):  # scene order must not matter: drawn far to near
        rgb = renderer.render(RenderScene(EGO, ground=(_road(),), boxes=boxes))
        row = int(CAM.cy + 20)
        assert rgb[row, int(CAM.cx), 0] > 2 * rgb[row, int(CAM.cx), 2]  # the near red car covers the far one
    # Seen from straight behind, the side faces are hidden: the rear face keeps one colour right up
    # to its sides (at 0.3 m above the ground, below the lamps and above the bumper band).
    rgb = renderer.render(RenderScene(EGO, ground=(_road(),), boxes=(near,)))
    row = int(round(CAM.cy + CAM.fy * (CAM.mount_height_m - 0.3) / 15.0))
    col_edge = int(round(CAM.cx - CAM.fx * 0.85 / 15.0))
    assert (rgb[row, col_edge] == rgb[row, int(round(CAM.cx))]).all()


def test_objects_behind_the_camera_beyond_range_or_around_the_lens_draw_nothing():
    renderer = CameraRenderer(CAM, max_distance_m=120.0)
    base = RenderScene(EGO, ground=(_road(),), markings=_edges())
    reference = renderer.render(base)
    behind = Box((-8.0, 0.0), 0.0, 4.5, 1.9, 1.5)
    too_far = Box((LENS_X + 150.0, 0.0), 0.0, 4.5, 1.9, 1.5)
    own_box = Box((1.46, 0.0), 0.0, 5.176, 2.297, 1.777)  # the ego's own body contains the lens
    for box in (behind, too_far, own_box):
        assert np.array_equal(renderer.render(replace(base, boxes=(box,))), reference), box
    assert np.array_equal(renderer.render(replace(base, lights=(TrafficLightHead((-20.0, 3.0, 4.0), 0.0, "red"),))),
                          reference)


def test_box_crossing_the_near_plane_is_clipped_not_dropped():
    # A long vehicle alongside the ego on the left, from 3 m behind the lens to 5 m in front of it.
    beside = Box((LENS_X + 1.0, 2.6), 0.0, 8.0, 1.9, 1.5)
    labels = CameraRenderer(CAM).render_labels(RenderScene(EGO, ground=(_road(),), boxes=(beside,)))
    rows, cols = _rows_cols(labels == SemanticClass.VEHICLE)
    assert cols.min() == 0  # it runs out of the left image border
    assert cols.max() < CAM.cx  # and stays left of the centre


def test_dashes_are_fixed_in_the_world_and_move_down_as_the_ego_advances():
    renderer = CameraRenderer(CAM)
    # One 3 m dash from x = 20 to 23.
    single = Marking(np.array([[20.0, 0.0], [200.0, 0.0]]), width_m=0.2, dash_m=(3.0, 1000.0))
    rows_by_ego_x = {}
    for ego_x in (0.0, 2.0):
        labels = renderer.render_labels(RenderScene((ego_x, 0.0, 0.0), markings=(single,)))
        rows, _ = _rows_cols(labels == SemanticClass.MARKING)
        rows_by_ego_x[ego_x] = rows
        near, far = 20.0 - ego_x - LENS_X, 23.0 - ego_x - LENS_X
        assert rows.max() == pytest.approx(CAM.cy + CAM.fy * CAM.mount_height_m / near, abs=1.0)
        assert rows.min() == pytest.approx(CAM.cy + CAM.fy * CAM.mount_height_m / far, abs=1.0)
    assert rows_by_ego_x[2.0].min() > rows_by_ego_x[0.0].min()
    assert rows_by_ego_x[2.0].max() > rows_by_ego_x[0.0].max()

    # A periodic pattern: advancing one period (12 m) shows the same picture; half a period does not.
    dashed = Marking(np.array([[-100.0, 0.0], [600.0, 0.0]]), width_m=0.15, dash_m=(3.0, 9.0))
    masks = [renderer.render_labels(RenderScene((x, 0.0, 0.0), markings=(dashed,))) == SemanticClass.MARKING
             for x in (0.0, 12.0, 6.0)]
    assert (masks[0] != masks[1]).mean() < 1e-3
    assert (masks[0] != masks[2]).sum() > 50


def test_brake_lights_change_red_pixels_on_the_rear():
    renderer = CameraRenderer(CAM)
    off = renderer.render(RenderScene(EGO, ground=(_road(),), boxes=(_car_with_rear_at(12.0, brake_on=False),)))
    on = renderer.render(RenderScene(EGO, ground=(_road(),), boxes=(_car_with_rear_at(12.0, brake_on=True),)))
    changed = np.any(off != on, axis=2)
    rows, cols = _rows_cols(changed)
    assert changed.sum() >= 20
    assert abs(0.5 * (cols.min() + cols.max()) - CAM.cx) < 3.0  # two lamps, symmetric about the centre
    assert (on[changed][:, 0] > 200).all() and (on[changed][:, 0] > off[changed][:, 0]).all()
    # Left and right lamp: two separate column groups.
    left, right = cols[cols < CAM.cx], cols[cols > CAM.cx]
    assert len(left) > 0 and len(right) > 0


def test_pedestrian_is_a_thin_tall_figure_and_obstacles_are_labelled():
    renderer = CameraRenderer(CAM)
    ped = Box((LENS_X + 10.0, 1.0), 0.0, 0.5, 0.6, 1.75, color=(60, 60, 140), kind="pedestrian")
    cone = Box((LENS_X + 10.0, -2.0), 0.0, 0.5, 0.5, 0.8, color=(250, 120, 20), kind="obstacle")
    labels = renderer.render_labels(RenderScene(EGO, ground=(_road(),), boxes=(ped, cone)))
    rows, cols = _rows_cols(labels == SemanticClass.PEDESTRIAN)
    assert rows.max() - rows.min() > 2.5 * (cols.max() - cols.min())
    assert rows.min() < CAM.cy < rows.max()  # taller than the lens: crosses the horizon
    rows, cols = _rows_cols(labels == SemanticClass.OBSTACLE)
    assert cols.min() > CAM.cx


@pytest.mark.parametrize("state, channel", [("red", 0), ("green", 1)])
def test_traffic_light_shows_its_lit_lamp_only_to_traffic_it_faces(state, channel):
    renderer = CameraRenderer(CAM)
    facing_us = TrafficLightHead((LENS_X + 20.0, -4.0, 4.0), np.pi, state)
    rgb = renderer.render(RenderScene(EGO, lights=(facing_us,)))
    labels = renderer.render_labels(RenderScene(EGO, lights=(facing_us,)))
    light = labels == SemanticClass.LIGHT
    assert light.sum() > 30
    def lit_pixels(img: np.ndarray) -> np.ndarray:
        img = img.astype(int)
        others = np.delete(img, channel, axis=2)
        return (img[..., channel] > 200) & (others.max(axis=2) < 130)

    lit = lit_pixels(rgb)
    assert lit.sum() >= 3 and light[lit].all()
    facing_away = replace(facing_us, facing_yaw_rad=0.0)
    rgb_away = renderer.render(RenderScene(EGO, lights=(facing_away,)))
    assert not lit_pixels(rgb_away).any()
    assert (renderer.render_labels(RenderScene(EGO, lights=(facing_away,))) == SemanticClass.LIGHT).sum() > 30


def test_render_is_deterministic_and_randomisation_needs_an_explicit_rng():
    scene = example_road_scene(ego_s_m=5.0, n_vehicles=8, curvature_1pm=1 / 250)
    a = CameraRenderer(CAM).render(scene)
    b = CameraRenderer(CAM).render(scene)
    renderer = CameraRenderer(CAM)
    assert a.tobytes() == b.tobytes() == renderer.render(scene).tobytes() == renderer.render(scene).tobytes()
    frame = renderer.render_with_labels(scene)
    assert frame.rgb.tobytes() == a.tobytes()
    assert frame.labels.tobytes() == renderer.render_labels(scene).tobytes()

    with pytest.raises(ValueError, match="randomize is None"):
        renderer.render(scene, rng=np.random.default_rng(0))
    jittery = CameraRenderer(CAM, randomize=DomainRandomization())
    r0 = jittery.render(scene, rng=np.random.default_rng(0))
    assert r0.tobytes() == jittery.render(scene, rng=np.random.default_rng(0)).tobytes()
    assert r0.tobytes() != jittery.render(scene, rng=np.random.default_rng(1)).tobytes()
    assert r0.tobytes() != a.tobytes()
    assert np.abs(r0.astype(int) - a.astype(int)).mean() < 25  # still the same scene


def test_labels_agree_with_the_colour_image():
    renderer = CameraRenderer(CAM)
    scene = example_road_scene(ego_s_m=0.0, n_vehicles=8)
    frame = renderer.render_with_labels(scene)
    for cls in (SemanticClass.ROAD, SemanticClass.MARKING, SemanticClass.VEHICLE):
        assert (frame.labels == cls).sum() > 0, cls
    road = frame.rgb[frame.labels == SemanticClass.ROAD].astype(int)
    marking = frame.rgb[frame.labels == SemanticClass.MARKING].astype(int)
    assert np.median(marking.sum(axis=1)) > np.median(road.sum(axis=1)) + 150  # paint is brighter than asphalt
    assert colorize_labels(frame.labels).shape == (288, 512, 3)


def test_small_frames_and_bad_input():
    small = CameraRenderer(PinholeCamera.nuscenes_cam_front(height=64, width=128))
    img = small.render(example_road_scene())
    assert img.shape == (64, 128, 3)
    with pytest.raises(TypeError, match="RenderScene"):
        small.render({"ego_pose_xyyaw": EGO})
    with pytest.raises(ValueError, match="max_distance_m"):
        CameraRenderer(CAM, max_distance_m=0.1, near_m=0.3)
