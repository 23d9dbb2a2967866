//! Figures from rounds run one side after the other (mailbus, its peer, mailbus, its peer, ...), so that
//! a slow spell of this shared VM (single runs swing by ±30 %) hits both sides alike; the median of each
//! side's rounds is the figure the ratios use.

/// One side's figure in each round.
pub struct Series {
    pub side: String,
    pub figures: Vec<f64>,
}

impl Series {
    pub fn new(side: impl Into<String>) -> Series {
        Series { side: side.into(), figures: Vec::new() }
    }

    /// `None` when no round measured this side.
    pub fn median(&self) -> Option<f64> {
        median(&self.figures)
    }
}

/// The middle figure; the mean of the middle two for an even count; `None` for none.
pub fn median(figures: &[f64]) -> Option<f64> {
    let mut sorted: Vec<f64> = figures.iter().copied().filter(|f| f.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    Some(if sorted.len() % 2 == 1 { sorted[middle] } else { (sorted[middle - 1] + sorted[middle]) / 2.0 })
}

/// A table of each side's rounds with its median beside them, in `unit`.
pub fn print_table(title: &str, unit: &str, series: &[&Series]) {
    println!("\n== {title} ==");
    let rounds = series.iter().map(|s| s.figures.len()).max().unwrap_or(0);
    let width = series.iter().map(|s| s.side.len()).max().unwrap_or(0).max(4);
    let mut header = format!("{:<width$}", "side");
    for round in 1..=rounds {
        let label = format!("round {round}");
        header.push_str(&format!(" {label:>8}"));
    }
    header.push_str(&format!(" {:>8}  ({unit})", "median"));
    println!("{header}");
    for s in series {
        let mut line = format!("{:<width$}", s.side);
        for figure in &s.figures {
            line.push_str(&format!(" {figure:>8.0}"));
        }
        for _ in s.figures.len()..rounds {
            line.push_str(&format!(" {:>8}", "-"));
        }
        match s.median() {
            Some(median) => line.push_str(&format!(" {median:>8.0}")),
            None => line.push_str(&format!(" {:>8}", "-")),
        }
        println!("{line}");
    }
}

/// `ratio of medians: <what>: a / b = r (<target>)`, or that one side was not measured. The line starts
/// with "ratio of medians:" so that `bench/run` finds it.
pub fn print_ratio(what: &str, ours: &Series, theirs: &Series, target: &str) {
    match (ours.median(), theirs.median()) {
        (Some(a), Some(b)) if b > 0.0 => {
            println!("ratio of medians: {what}: {a:.0} / {b:.0} = {:.2} ({target})", a / b)
        }
        _ => println!("ratio of medians: {what}: not measured ({target})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_is_the_middle_figure_or_the_mean_of_the_middle_two() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[5.0]), Some(5.0));
        assert_eq!(median(&[900.0, 1500.0, 1000.0]), Some(1000.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[f64::NAN, 7.0]), Some(7.0), "a figure that is not a number is left out");
    }
}
