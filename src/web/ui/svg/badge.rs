//! A badge as SVG in the shields.io "flat" look: a grey label on the
//! left, a coloured message on the right. Text widths are estimated from
//! the character count (Verdana 11 px averages about 7 px a character),
//! which is what shields.io's own fallback does; no font is loaded.

use super::escape;

/// The colours badges use, named as shields.io names them (the same name
/// goes into the endpoint JSON's `color`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Color {
    BrightGreen,
    Green,
    YellowGreen,
    Yellow,
    Orange,
    Red,
    Blue,
    LightGrey,
}

impl Color {
    pub fn name(self) -> &'static str {
        match self {
            Color::BrightGreen => "brightgreen",
            Color::Green => "green",
            Color::YellowGreen => "yellowgreen",
            Color::Yellow => "yellow",
            Color::Orange => "orange",
            Color::Red => "red",
            Color::Blue => "blue",
            Color::LightGrey => "lightgrey",
        }
    }

    pub fn hex(self) -> &'static str {
        match self {
            Color::BrightGreen => "#4c1",
            Color::Green => "#97ca00",
            Color::YellowGreen => "#a4a61d",
            Color::Yellow => "#dfb317",
            Color::Orange => "#fe7d37",
            Color::Red => "#e05d44",
            Color::Blue => "#007ec6",
            Color::LightGrey => "#9f9f9f",
        }
    }
}

/// Estimated width of `text` at Verdana 11 px, plus padding.
fn width(text: &str) -> usize {
    text.chars().count() * 7 + 10
}

/// The badge `label | message`.
pub fn badge(label: &str, message: &str, color: Color) -> String {
    let (lw, mw) = (width(label), width(message));
    let total = lw + mw;
    let (label, message) = (escape(label), escape(message));
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{total}\" height=\"20\" role=\"img\" aria-label=\"{label}: {message}\"><title>{label}: {message}</title>\
<rect width=\"{lw}\" height=\"20\" fill=\"#555\"/><rect x=\"{lw}\" width=\"{mw}\" height=\"20\" fill=\"{hex}\"/>\
<g fill=\"#fff\" text-anchor=\"middle\" font-family=\"Verdana,Geneva,DejaVu Sans,sans-serif\" font-size=\"11\">\
<text x=\"{lx}\" y=\"14\">{label}</text><text x=\"{mx}\" y=\"14\">{message}</text></g></svg>",
        hex = color.hex(),
        lx = lw / 2,
        mx = lw + mw / 2,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_badge_holds_its_label_message_and_colour() {
        let svg = badge("uptime 30d", "99.95%", Color::BrightGreen);
        assert!(
            svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"132\" height=\"20\""),
            "{svg}"
        );
        assert!(svg.contains("<title>uptime 30d: 99.95%</title>"));
        assert!(svg.contains("fill=\"#4c1\""));
        assert!(!svg.contains("style="));
        let escaped = badge("a<b", "\"x\"", Color::Red);
        assert!(escaped.contains("a&lt;b") && escaped.contains("&quot;x&quot;") && !escaped.contains("a<b"));
    }

    #[test]
    fn colour_names_are_those_of_shields_io() {
        let all = [
            Color::BrightGreen,
            Color::Green,
            Color::YellowGreen,
            Color::Yellow,
            Color::Orange,
            Color::Red,
            Color::Blue,
            Color::LightGrey,
        ];
        let names: Vec<&str> = all.iter().map(|c| c.name()).collect();
        assert_eq!(
            names,
            ["brightgreen", "green", "yellowgreen", "yellow", "orange", "red", "blue", "lightgrey"]
        );
    }
}
