//! Whether a resource (RSS, open descriptors) stayed flat over a long run: the verdict of the
//! soak benchmark, from samples taken at regular times.

use serde_json::{Value as Json, json};

/// How much growth still counts as flat: the larger of a share of the first steady value and
/// an absolute amount (allocators and descriptor tables move by steps, whatever the level).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerance {
    /// Share of the first steady value that may be added.
    pub relative: f64,
    /// Amount that may be added whatever the level.
    pub absolute: f64,
}

impl Tolerance {
    fn allowed(&self, base: f64) -> f64 {
        (self.relative * base.abs()).max(self.absolute)
    }
}

/// The verdict on one series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Flatness {
    /// The first sample at or after the warm-up.
    pub first_steady: f64,
    /// The last sample.
    pub last: f64,
    /// `last - first_steady`.
    pub growth: f64,
    /// Least-squares slope over the second half of the run, per hour.
    pub slope_per_hour: f64,
    /// What that slope adds up to over the steady part of the run.
    pub trend_growth: f64,
    /// The growth the tolerance allows.
    pub allowed: f64,
    /// Neither the growth nor the trend's growth exceeds what is allowed.
    pub flat: bool,
}

impl Flatness {
    /// The verdict as a JSON object, rounded for the report.
    pub fn to_json(&self) -> Json {
        let r = |x: f64| (x * 1000.0).round() / 1000.0;
        json!({
            "first_steady": r(self.first_steady),
            "last": r(self.last),
            "growth": r(self.growth),
            "slope_per_hour": r(self.slope_per_hour),
            "trend_growth": r(self.trend_growth),
            "allowed": r(self.allowed),
            "flat": self.flat,
        })
    }
}

/// Least-squares slope of `points` (time, value); 0 for fewer than two distinct times.
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let mean_t = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_v = points.iter().map(|p| p.1).sum::<f64>() / n;
    let (mut num, mut den) = (0.0, 0.0);
    for (t, v) in points {
        num += (t - mean_t) * (v - mean_v);
        den += (t - mean_t) * (t - mean_t);
    }
    if den == 0.0 { 0.0 } else { num / den }
}

/// Judges `points` (minutes since the start, value), in time order. Samples before `warmup_min`
/// are the ramp-up and are left out. `None` when fewer than two samples are steady.
pub fn flatness(points: &[(f64, f64)], warmup_min: f64, tolerance: Tolerance) -> Option<Flatness> {
    let steady: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|(t, v)| *t >= warmup_min && t.is_finite() && v.is_finite())
        .collect();
    let (&(t0, first), &(t_end, last)) = (steady.first()?, steady.last()?);
    if steady.len() < 2 || t_end <= t0 {
        return None;
    }
    let half = t_end / 2.0;
    let mut second: Vec<(f64, f64)> = steady.iter().copied().filter(|p| p.0 >= half).collect();
    if second.len() < 2 {
        second = steady[steady.len() - 2..].to_vec();
    }
    let per_min = slope(&second);
    let trend_growth = per_min * (t_end - t0);
    let growth = last - first;
    let allowed = tolerance.allowed(first);
    Some(Flatness {
        first_steady: first,
        last,
        growth,
        slope_per_hour: per_min * 60.0,
        trend_growth,
        allowed,
        flat: growth <= allowed && trend_growth <= allowed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOL: Tolerance = Tolerance {
        relative: 0.1,
        absolute: 2.0,
    };

    fn series(values: &[f64]) -> Vec<(f64, f64)> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| (i as f64, *v))
            .collect()
    }

    fn flat(values: &[f64]) -> bool {
        flatness(&series(values), 1.0, TOL)
            .expect("enough samples")
            .flat
    }

    #[test]
    fn verdicts() {
        // Constant after the ramp-up of the first minute.
        assert!(flat(&[10.0, 100.0, 100.0, 100.0, 100.0, 100.0]));
        // Noise within the tolerance.
        assert!(flat(&[10.0, 100.0, 104.0, 97.0, 103.0, 99.0, 105.0, 101.0]));
        // Shrinking is never a leak.
        assert!(flat(&[10.0, 100.0, 90.0, 80.0, 70.0]));
        // A steady leak of 3 % a minute: 12 % by the end, and the trend says as much.
        assert!(!flat(&[10.0, 100.0, 103.0, 106.0, 109.0, 112.0]));
        // Growth that stopped in the first half: the end is up 15 %, the trend is flat, still
        // too much growth.
        assert!(!flat(&[10.0, 100.0, 115.0, 115.0, 115.0, 115.0, 115.0]));
        // Flat until a climb at the very end: the trend of the second half catches it before the
        // total growth does.
        let v = flatness(
            &series(&[10.0, 100.0, 100.0, 100.0, 100.0, 100.0, 100.0, 104.0, 108.0]),
            1.0,
            TOL,
        )
        .unwrap();
        assert!(
            v.growth <= v.allowed && v.trend_growth > v.allowed && !v.flat,
            "{v:?}"
        );
        // Small values: the absolute tolerance (2) applies, not 10 % of 5.
        assert!(flat(&[1.0, 5.0, 6.0, 7.0, 6.0]));
        assert!(!flat(&[1.0, 5.0, 6.0, 7.0, 8.0]));
    }

    #[test]
    fn figures() {
        let v = flatness(&series(&[0.0, 50.0, 52.0, 54.0, 56.0]), 1.0, TOL).unwrap();
        assert_eq!((v.first_steady, v.last, v.growth), (50.0, 56.0, 6.0));
        assert!((v.slope_per_hour - 120.0).abs() < 1e-9, "{v:?}");
        assert!((v.trend_growth - 6.0).abs() < 1e-9, "{v:?}");
        assert_eq!(v.allowed, 5.0);
        assert!(!v.flat);
    }

    #[test]
    fn too_few_steady_samples_give_no_verdict() {
        assert_eq!(flatness(&[], 1.0, TOL), None);
        assert_eq!(flatness(&series(&[1.0, 2.0]), 1.0, TOL), None);
        assert_eq!(flatness(&[(2.0, 1.0), (2.0, 9.0)], 1.0, TOL), None);
        assert!(flatness(&series(&[1.0, 2.0, 3.0]), 1.0, TOL).is_some());
        assert_eq!(
            flatness(&[(0.0, 1.0), (1.0, f64::NAN), (2.0, 3.0)], 1.0, TOL),
            None
        );
    }
}
