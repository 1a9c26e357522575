//! A small user-agent classifier for the system user attributes: browser,
//! browser major version, operating system and device type. It knows the
//! browsers and systems that make up nearly all web traffic; anything else is
//! reported as "Other".

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserAgent {
    pub browser: &'static str,
    pub browser_version: Option<String>,
    pub os: &'static str,
    pub device_type: &'static str,
}

/// Browser tokens in the order they must be tried: many browsers also claim
/// to be Chrome and Safari, so the specific ones come first.
const BROWSERS: &[(&str, &str)] = &[
    ("Edg/", "Edge"),
    ("EdgA/", "Edge"),
    ("EdgiOS/", "Edge"),
    ("OPR/", "Opera"),
    ("Opera/", "Opera"),
    ("SamsungBrowser/", "Samsung Internet"),
    ("YaBrowser/", "Yandex Browser"),
    ("UCBrowser/", "UC Browser"),
    ("FxiOS/", "Firefox"),
    ("Firefox/", "Firefox"),
    ("CriOS/", "Chrome"),
    ("Chrome/", "Chrome"),
    ("Version/", "Safari"),
    ("MSIE ", "Internet Explorer"),
    ("Trident/", "Internet Explorer"),
];

const BOT_MARKERS: &[&str] = &["bot", "crawler", "spider", "slurp", "headless", "curl/", "wget/", "python-requests"];

pub fn parse(ua: &str) -> UserAgent {
    let lower = ua.to_ascii_lowercase();
    let is_bot = BOT_MARKERS.iter().any(|m| lower.contains(m));
    let (browser, browser_version) = BROWSERS
        .iter()
        .find(|(token, _)| ua.contains(token))
        .map(|(token, name)| (*name, major_version_after(ua, token)))
        .unwrap_or(("Other", None));
    let browser_version = if browser == "Internet Explorer" && ua.contains("Trident/") && !ua.contains("MSIE ") {
        major_version_after(ua, "rv:")
    } else {
        browser_version
    };
    UserAgent { browser, browser_version, os: os_of(ua), device_type: device_type_of(ua, &lower, is_bot) }
}

fn major_version_after(ua: &str, token: &str) -> Option<String> {
    let rest = &ua[ua.find(token)? + token.len()..];
    let major: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    (!major.is_empty()).then_some(major)
}

fn os_of(ua: &str) -> &'static str {
    if ua.contains("Windows") {
        "Windows"
    } else if ua.contains("iPhone") || ua.contains("iPad") || ua.contains("iPod") {
        "iOS"
    } else if ua.contains("Android") {
        "Android"
    } else if ua.contains("CrOS") {
        "ChromeOS"
    } else if ua.contains("Mac OS X") || ua.contains("Macintosh") {
        "macOS"
    } else if ua.contains("Linux") || ua.contains("X11") {
        "Linux"
    } else {
        "Other"
    }
}

fn device_type_of(ua: &str, lower: &str, is_bot: bool) -> &'static str {
    if is_bot {
        "bot"
    } else if ua.contains("iPad") || lower.contains("tablet") || (ua.contains("Android") && !ua.contains("Mobile")) {
        "tablet"
    } else if ua.contains("Mobi") || ua.contains("iPhone") || ua.contains("iPod") {
        "mobile"
    } else {
        "desktop"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(ua: &str, browser: &str, version: Option<&str>, os: &str, device: &str) {
        let got = parse(ua);
        assert_eq!((got.browser, got.browser_version.as_deref(), got.os, got.device_type), (browser, version, os, device), "{ua}");
    }

    #[test]
    fn common_user_agents() {
        check(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
            "Chrome",
            Some("120"),
            "Windows",
            "desktop",
        );
        check("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.91",
              "Edge", Some("120"), "Windows", "desktop");
        check("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
              "Safari", Some("17"), "iOS", "mobile");
        check(
            "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/119.0 Mobile/15E148 Safari/604.1",
            "Chrome",
            Some("119"),
            "iOS",
            "tablet",
        );
        check(
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
            "Chrome",
            Some("120"),
            "Android",
            "mobile",
        );
        check("Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/23.0 Chrome/115.0.0.0 Safari/537.36",
              "Samsung Internet", Some("23"), "Android", "tablet");
        check(
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.1; rv:120.0) Gecko/20100101 Firefox/120.0",
            "Firefox",
            Some("120"),
            "macOS",
            "desktop",
        );
        check("Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0", "Firefox", Some("115"), "Linux", "desktop");
        check("Mozilla/5.0 (Windows NT 6.1; Trident/7.0; rv:11.0) like Gecko", "Internet Explorer", Some("11"), "Windows", "desktop");
        check("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "Other", None, "Other", "bot");
        check("", "Other", None, "Other", "desktop");
    }
}
