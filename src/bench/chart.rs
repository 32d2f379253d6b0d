//! `ember bench --chart`: pp and tg tokens/s per model and backend as an SVG bar chart.

use super::Record;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Two panels (prompt processing, generation), one bar per model x backend with its value and
/// standard deviation written on it.
pub fn svg_chart(records: &[Record]) -> String {
    let label = |r: &Record| {
        format!(
            "{} · {} ({}) · {}",
            r.model_type,
            r.backends,
            r.gpu_info,
            r.test()
        )
    };
    // Wide enough for the longest label at ~7.5 px per character of the 13 px font.
    let longest = records
        .iter()
        .map(|r| label(r).chars().count())
        .max()
        .unwrap_or(10);
    let (bar_h, gap, label_w, plot_w) = (26.0, 8.0, 20.0 + 7.5 * longest as f64, 420.0);
    let panels: Vec<(&str, Vec<&Record>)> = vec![
        (
            "Prompt processing (tokens/s)",
            records.iter().filter(|r| r.n_gen == 0).collect(),
        ),
        (
            "Generation (tokens/s)",
            records.iter().filter(|r| r.n_gen > 0).collect(),
        ),
    ];
    let rows: usize = panels.iter().map(|(_, v)| v.len() + 2).sum();
    let height = 40.0 + rows as f64 * (bar_h + gap);
    let width = label_w + plot_w + 140.0;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"13\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    s.push_str(
        "<text x=\"10\" y=\"24\" font-size=\"16\" font-weight=\"bold\">ember bench</text>\n",
    );
    let mut y = 40.0;
    let colors = [
        "#d9480f", "#1c7ed6", "#2b8a3e", "#7048e8", "#e67700", "#0c8599",
    ];
    for (title, recs) in panels {
        s.push_str(&format!(
            "<text x=\"10\" y=\"{}\" font-weight=\"bold\">{}</text>\n",
            y + 18.0,
            escape(title)
        ));
        y += bar_h + gap;
        let max = recs
            .iter()
            .map(|r| r.avg_ts + r.stddev_ts)
            .fold(0.0f64, f64::max)
            .max(1e-9);
        let mut backends: Vec<&str> = Vec::new();
        for r in &recs {
            let bi = backends
                .iter()
                .position(|b| *b == r.backends)
                .unwrap_or_else(|| {
                    backends.push(&r.backends);
                    backends.len() - 1
                });
            let w = (r.avg_ts / max * plot_w).max(1.0);
            let err = r.stddev_ts / max * plot_w;
            s.push_str(&format!(
                "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n<rect x=\"{label_w}\" y=\"{y}\" width=\"{w:.1}\" height=\"{bar_h}\" fill=\"{}\"/>\n",
                label_w - 8.0,
                y + 18.0,
                escape(&label(r)),
                colors[bi % colors.len()]
            ));
            if err > 0.5 {
                let (x0, x1, ym) = (label_w + w - err, label_w + w + err, y + bar_h / 2.0);
                s.push_str(&format!("<line x1=\"{x0:.1}\" x2=\"{x1:.1}\" y1=\"{ym}\" y2=\"{ym}\" stroke=\"black\"/>\n"));
            }
            s.push_str(&format!(
                "<text x=\"{:.1}\" y=\"{}\">{:.2} ± {:.2}</text>\n",
                label_w + w + err + 6.0,
                y + 18.0,
                r.avg_ts,
                r.stddev_ts
            ));
            y += bar_h + gap;
        }
        y += bar_h + gap;
    }
    s.push_str("</svg>\n");
    s
}
