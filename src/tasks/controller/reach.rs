//! The point-mass reach: a 1 kg mass on a plane with a little friction and noisy accelerations
//! must get to its target and stop there (within 0.05, slower than 0.1) inside 200 steps of
//! 0.05 s. Force is limited to 1 N per axis. State: `[x, y, vx, vy, target_x, target_y]`.

use super::plant::{noise, round3, Plant, Status};
use rand::rngs::StdRng;
use rand::Rng;

pub const REACH_TOLERANCE: f64 = 0.05;
pub const STOP_SPEED: f64 = 0.1;
const FRICTION: f64 = 0.1;
const ACCEL_NOISE: f64 = 0.2;
/// Distance under which the mass counts as "at" the target when looking for fly-bys.
const NEAR: f64 = 0.15;

#[derive(Clone, Debug, Default)]
pub struct PointMass;

fn distance(s: &[f64]) -> f64 {
    ((s[4] - s[0]).powi(2) + (s[5] - s[1]).powi(2)).sqrt()
}

fn speed(s: &[f64]) -> f64 {
    (s[2] * s[2] + s[3] * s[3]).sqrt()
}

impl Plant for PointMass {
    fn name(&self) -> String {
        "reach".into()
    }

    fn goal(&self) -> String {
        format!(
            "A point mass of 1 kg on a plane must reach its target and stop there: a rollout succeeds when the distance to the target is below {REACH_TOLERANCE} and the speed below {STOP_SPEED}, within {} steps of {} s. The force is at most 1 per axis.",
            self.max_steps(),
            self.dt()
        )
    }

    fn observation_names(&self) -> Vec<String> {
        ["x", "y", "vx", "vy", "target_x", "target_y"].map(String::from).to_vec()
    }

    fn action_names(&self) -> Vec<String> {
        vec!["fx".into(), "fy".into()]
    }

    fn action_limit(&self) -> f64 {
        1.0
    }

    fn max_steps(&self) -> usize {
        200
    }

    fn dt(&self) -> f64 {
        0.05
    }

    fn initial_state(&self, rng: &mut StdRng) -> Vec<f64> {
        loop {
            let s: Vec<f64> = vec![
                rng.gen_range(-1.0..=1.0),
                rng.gen_range(-1.0..=1.0),
                rng.gen_range(-0.2..=0.2),
                rng.gen_range(-0.2..=0.2),
                rng.gen_range(-1.0..=1.0),
                rng.gen_range(-1.0..=1.0),
            ];
            if distance(&s) >= 0.5 {
                return s;
            }
        }
    }

    fn observe(&self, state: &[f64]) -> Vec<f64> {
        state.to_vec()
    }

    fn step(&self, s: &mut [f64], action: &[f64], rng: &mut StdRng) {
        let dt = self.dt();
        for axis in 0..2 {
            let accel = action[axis] - FRICTION * s[2 + axis] + noise(rng, ACCEL_NOISE);
            s[2 + axis] += accel * dt;
            s[axis] += s[2 + axis] * dt;
        }
    }

    fn status(&self, s: &[f64], steps: usize) -> Status {
        if distance(s) < REACH_TOLERANCE && speed(s) < STOP_SPEED {
            Status::Succeeded(format!("reached the target and stopped at step {steps}"))
        } else {
            Status::Running
        }
    }

    fn at_budget(&self, s: &[f64]) -> Status {
        Status::Failed(format!(
            "time ran out {} from the target, moving at speed {}",
            round3(distance(s)),
            round3(speed(s))
        ))
    }

    fn tracked(&self, s: &[f64]) -> (&'static str, f64) {
        ("distance", distance(s))
    }

    fn diagnose(&self, tracked: &[f64]) -> String {
        // A fly-by: the distance dips under NEAR and climbs out again.
        let mut flybys = 0;
        let mut inside = false;
        for &d in tracked {
            if d < NEAR {
                inside = true;
            } else if inside {
                inside = false;
                flybys += 1;
            }
        }
        let closest = tracked.iter().copied().fold(f64::INFINITY, f64::min);
        let last = tracked.last().copied().unwrap_or(f64::INFINITY);
        if flybys > 0 {
            format!("it came within {NEAR} of the target and moved away again {flybys} time(s) (overshoot); closest {}", round3(closest))
        } else if last <= closest + 1e-9 && last > NEAR {
            "it was still approaching when time ran out (too slow)".into()
        } else if last < NEAR {
            "it got near the target but did not settle there".into()
        } else {
            String::new()
        }
    }
}
