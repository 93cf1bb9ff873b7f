//! Cart-pole balance (Barto, Sutton & Anderson's equations): a pole hinged on a cart must stay
//! within 12 degrees of upright, and the cart within 2.4 of the centre, for 500 steps of 0.02 s,
//! from a tilted start, with noise on the force. The force is limited to 10 N.
//! State: `[x, x_dot, theta, theta_dot]`, theta in radians, positive when the pole leans
//! towards +x (a positive force pushes the cart towards +x).

use super::plant::{noise, round3, Plant, Status};
use rand::rngs::StdRng;
use rand::Rng;

const GRAVITY: f64 = 9.8;
const CART_MASS: f64 = 1.0;
const POLE_MASS: f64 = 0.1;
/// Half the pole's length.
const POLE_HALF_LENGTH: f64 = 0.5;
const FORCE_NOISE: f64 = 1.0;
pub const ANGLE_LIMIT: f64 = 12.0 * std::f64::consts::PI / 180.0;
pub const POSITION_LIMIT: f64 = 2.4;

#[derive(Clone, Debug, Default)]
pub struct CartPole;

impl Plant for CartPole {
    fn name(&self) -> String {
        "cartpole".into()
    }

    /// The pole that falls at step 300 was balanced longer than the one that fell at step 8.
    fn lasting_counts(&self) -> bool {
        true
    }

    fn goal(&self) -> String {
        format!(
            "A pole is hinged on a cart that moves along a track. Keep the pole within 12 degrees (0.21 rad) of upright and the cart within {POSITION_LIMIT} of the centre for {} steps of {} s. theta > 0 means the pole leans towards +x; a positive force pushes the cart towards +x; the force is at most 10.",
            self.max_steps(),
            self.dt()
        )
    }

    fn observation_names(&self) -> Vec<String> {
        ["x", "x_dot", "theta", "theta_dot"].map(String::from).to_vec()
    }

    fn action_names(&self) -> Vec<String> {
        vec!["force".into()]
    }

    fn action_limit(&self) -> f64 {
        10.0
    }

    fn max_steps(&self) -> usize {
        500
    }

    fn dt(&self) -> f64 {
        0.02
    }

    fn initial_state(&self, rng: &mut StdRng) -> Vec<f64> {
        vec![
            rng.gen_range(-0.5..=0.5),
            rng.gen_range(-0.1..=0.1),
            rng.gen_range(-0.15..=0.15),
            rng.gen_range(-0.1..=0.1),
        ]
    }

    fn observe(&self, state: &[f64]) -> Vec<f64> {
        state.to_vec()
    }

    fn step(&self, s: &mut [f64], action: &[f64], rng: &mut StdRng) {
        let force = action[0] + noise(rng, FORCE_NOISE);
        let (theta, theta_dot) = (s[2], s[3]);
        let (sin, cos) = theta.sin_cos();
        let total = CART_MASS + POLE_MASS;
        let temp = (force + POLE_MASS * POLE_HALF_LENGTH * theta_dot * theta_dot * sin) / total;
        let theta_acc = (GRAVITY * sin - cos * temp)
            / (POLE_HALF_LENGTH * (4.0 / 3.0 - POLE_MASS * cos * cos / total));
        let x_acc = temp - POLE_MASS * POLE_HALF_LENGTH * theta_acc * cos / total;
        let dt = self.dt();
        // Semi-implicit Euler: velocities first.
        s[1] += x_acc * dt;
        s[0] += s[1] * dt;
        s[3] += theta_acc * dt;
        s[2] += s[3] * dt;
    }

    fn status(&self, s: &[f64], steps: usize) -> Status {
        if s[2].abs() > ANGLE_LIMIT {
            Status::Failed(format!(
                "the pole fell past 12 degrees at step {steps} (cart at x={})",
                round3(s[0])
            ))
        } else if s[0].abs() > POSITION_LIMIT {
            Status::Failed(format!(
                "the cart left the track (|x| > {POSITION_LIMIT}) at step {steps} (theta={})",
                round3(s[2])
            ))
        } else {
            Status::Running
        }
    }

    fn at_budget(&self, _s: &[f64]) -> Status {
        Status::Succeeded(format!("balanced for all {} steps", self.max_steps()))
    }

    fn tracked(&self, s: &[f64]) -> (&'static str, f64) {
        ("theta", s[2])
    }

    fn diagnose(&self, tracked: &[f64]) -> String {
        let swings = tracked.windows(2).filter(|w| w[0].signum() != w[1].signum()).count();
        match tracked.last() {
            Some(&last) if swings >= 3 => format!(
                "the pole swung from side to side {swings} times before it fell (last theta {})",
                round3(last)
            ),
            Some(&last) if last.abs() > ANGLE_LIMIT => format!(
                "the pole fell to the {} side without swinging back",
                if last > 0.0 { "+x" } else { "-x" }
            ),
            _ => String::new(),
        }
    }
}
