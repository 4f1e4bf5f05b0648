//! Showing URLs that may hold credentials without showing the credentials.

/// The URL with the password of its user-info part, and any `password=` query
/// parameter, replaced by `***`.
pub fn url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let shown = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    };
    redact_query(&shown)
}

fn redact_query(url: &str) -> String {
    let Some((base, query)) = url.split_once('?') else { return url.to_owned() };
    let query = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&");
    format!("{base}?{query}")
}

#[cfg(test)]
mod tests {
    use super::url_password;

    #[test]
    fn passwords_are_hidden_and_the_rest_kept() {
        assert_eq!(
            url_password("postgres://guichet:s3cr3t@db:5432/g?sslmode=require"),
            "postgres://guichet:***@db:5432/g?sslmode=require"
        );
        assert_eq!(
            url_password("smtp://mailer:pa:ss@relay:587?tls=starttls"),
            "smtp://mailer:***@relay:587?tls=starttls"
        );
        assert_eq!(url_password("postgres://db/g?user=g&password=x"), "postgres://db/g?user=g&password=***");
        assert_eq!(url_password("postgres://postgres@127.0.0.1/test"), "postgres://postgres@127.0.0.1/test");
        assert_eq!(url_password("sqlite://guichet.db"), "sqlite://guichet.db");
    }
}
