//! Known answers and error cases of every rule, through the public API.

use neuroshard_aggregate::{
    ClipParams, Error, GeoMedParams, Radius, Rule, RuleKind, Start, Trim, aggregate, bulyan,
    bulyan_select, centered_clip, centered_clip_from, geometric_median, krum, krum_select, mean,
    median, multi_krum, trimmed_mean,
};

/// One-coordinate vectors.
fn scalars(values: &[f32]) -> Vec<Vec<f32>> {
    values.iter().map(|&x| vec![x]).collect()
}

#[test]
fn coordinate_rules() {
    let v = scalars(&[1.0, 2.0, 3.0, 4.0, 100.0]);
    assert_eq!(trimmed_mean(&v, Trim::Fraction(0.2)).unwrap(), vec![3.0]);
    assert_eq!(trimmed_mean(&v, Trim::Count(2)).unwrap(), vec![3.0]);
    assert_eq!(trimmed_mean(&v, Trim::Count(0)).unwrap(), vec![22.0]);
    assert_eq!(mean(&v).unwrap(), vec![22.0]);
    assert_eq!(median(&v).unwrap(), vec![3.0]);
    assert_eq!(
        median(&scalars(&[10.0, -2.0, 7.0, 3.0])).unwrap(),
        vec![5.0]
    );
    assert_eq!(median(&scalars(&[1.0, 2.0])).unwrap(), vec![1.5]);
    // Per coordinate, independently: the median of columns, not of rows.
    let rows = [vec![1.0f32, 30.0], vec![2.0, 10.0], vec![3.0, 20.0]];
    assert_eq!(median(&rows).unwrap(), vec![2.0, 20.0]);
    // β = 0.25 of 8 trims 2 from each end.
    let eight = scalars(&[-1e9, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 1e9]);
    assert_eq!(
        trimmed_mean(&eight, Trim::Fraction(0.25)).unwrap(),
        vec![3.5]
    );
}

#[test]
fn krum_family() {
    let mut v: Vec<Vec<f32>> = vec![
        vec![0.0, 0.0],
        vec![0.1, 0.0],
        vec![0.0, 0.1],
        vec![-0.1, 0.0],
        vec![0.0, -0.1],
    ];
    v.push(vec![50.0, 50.0]);
    v.push(vec![-40.0, 60.0]);
    // n = 7, f = 2: the centre of the plus sign has the closest 3 neighbours.
    assert_eq!(krum(&v, 2).unwrap(), vec![0.0, 0.0]);
    assert_eq!(krum_select(&v, 2, 1).unwrap(), vec![0]);
    let mut kept = krum_select(&v, 2, 5).unwrap();
    kept.sort_unstable();
    assert_eq!(kept, vec![0, 1, 2, 3, 4]);
    assert_eq!(multi_krum(&v, 2, 5).unwrap(), vec![0.0, 0.0]);
    assert!(matches!(
        krum(&v, 3),
        Err(Error::TooManyAttackers {
            rule: RuleKind::Krum,
            n: 7,
            f: 3,
            ..
        })
    ));
    assert!(matches!(
        multi_krum(&v, 2, 6),
        Err(Error::InvalidParameter { name: "m", .. })
    ));
}

#[test]
fn bulyan_keeps_the_honest_core() {
    // n = 7, f = 1: select 5 by iterated Krum, trim 1 per end per coordinate.
    let v = scalars(&[10.0, 11.0, 12.0, 13.0, 14.0, 1e6, -1e6]);
    let mut chosen = bulyan_select(&v, 1).unwrap();
    chosen.sort_unstable();
    assert_eq!(chosen, vec![0, 1, 2, 3, 4]);
    assert_eq!(bulyan(&v, 1).unwrap(), vec![12.0]);
    assert!(matches!(
        bulyan(&v, 2),
        Err(Error::TooManyAttackers {
            requires: "n ≥ 4f + 3",
            ..
        })
    ));
}

#[test]
fn geometric_median_of_symmetric_points_is_their_centre() {
    let hexagon: Vec<Vec<f32>> = (0..6)
        .map(|k| {
            let a = std::f32::consts::PI / 3.0 * k as f32;
            vec![3.0 + a.cos(), -1.0 + a.sin()]
        })
        .collect();
    let p = GeoMedParams {
        nu: 1e-9,
        max_iter: 200,
        tol: 1e-12,
    };
    let z = geometric_median(&hexagon, &p).unwrap();
    assert!(
        (z[0] - 3.0).abs() < 1e-5 && (z[1] + 1.0).abs() < 1e-5,
        "{z:?}"
    );
    // Collinear points: the middle one, not the mean (which the outlier drags to 34).
    let line = scalars(&[0.0, 1.0, 2.0, 3.0, 164.0]);
    let z = geometric_median(&line, &p).unwrap();
    assert!((z[0] - 2.0).abs() < 1e-3, "{z:?}");
}

#[test]
fn centred_clipping_bounds_each_vectors_pull() {
    let mut v = vec![vec![1.0f32, 1.0]; 4];
    v.push(vec![1e5, 1e5]);
    let p = ClipParams {
        tau: Radius::Fixed(0.5),
        iterations: 1,
        start: Start::Zero,
    };
    // From the previous aggregate (1, 1) the honest vectors do not move it; the attacker moves
    // it by at most τ / n = 0.1.
    let out = centered_clip_from(&v, &p, &[1.0, 1.0]).unwrap();
    let moved = ((out[0] - 1.0).powi(2) + (out[1] - 1.0).powi(2)).sqrt();
    assert!((moved - 0.1).abs() < 1e-6, "{out:?}");
    // The default (median start, median-distance radius) lands on the honest point.
    assert_eq!(
        centered_clip(&v, &ClipParams::default()).unwrap(),
        vec![1.0, 1.0]
    );
    assert!(matches!(
        centered_clip_from(&v, &p, &[1.0]),
        Err(Error::StartLength {
            len: 1,
            expected: 2
        })
    ));
}

#[test]
fn bad_input_is_an_error_naming_the_vector() {
    let rule = Rule::Median;
    let none: Vec<Vec<f32>> = Vec::new();
    assert_eq!(aggregate(&rule, &none), Err(Error::NoVectors));
    let uneven = vec![vec![1.0f32, 2.0], vec![3.0, 4.0], vec![5.0]];
    assert_eq!(
        aggregate(&rule, &uneven),
        Err(Error::LengthMismatch {
            index: 2,
            len: 1,
            expected: 2
        })
    );
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let v = vec![vec![1.0f32, 2.0], vec![3.0, bad], vec![5.0, 6.0]];
        for kind in RuleKind::ALL {
            let rule = Rule::for_attackers(kind, 3, 0).unwrap();
            assert_eq!(
                aggregate(&rule, &v),
                Err(Error::NonFinite {
                    index: 1,
                    coordinate: 1
                }),
                "{kind}"
            );
        }
    }
    // Slices work as well as vectors.
    let a = [1.0f32, 2.0];
    let b = [3.0f32, 4.0];
    assert_eq!(mean(&[&a[..], &b[..]]).unwrap(), vec![2.0, 3.0]);
    // Empty vectors aggregate to an empty vector, under every rule.
    let empty = vec![Vec::<f32>::new(); 7];
    for kind in RuleKind::ALL {
        let rule = Rule::for_attackers(kind, 7, 1).unwrap();
        assert_eq!(
            aggregate(&rule, &empty).unwrap(),
            Vec::<f32>::new(),
            "{kind}"
        );
    }
}

#[test]
fn error_messages_say_what_to_do() {
    let err = Rule::for_attackers(RuleKind::Krum, 6, 2)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "krum cannot tolerate f = 2 attackers among n = 6 vectors (needs n > 2f + 2); lower f or add vectors"
    );
    let err = "average".parse::<RuleKind>().unwrap_err().to_string();
    assert!(
        err.contains("trimmed-mean") && err.contains("bulyan"),
        "{err}"
    );
}
