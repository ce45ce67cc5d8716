//! Request path → component id, with Spin's route rules.
//!
//! A route is either exact (`/api/v0/pi`) or a trailing wildcard (`/api/...`, which matches
//! `/api` itself and everything below it; `/...` matches every path). When several routes match,
//! the most specific wins: an exact route beats any wildcard, and a longer wildcard prefix beats
//! a shorter one. The table is built once per manifest; matching allocates nothing.

use std::collections::HashMap;

#[derive(Debug, Clone)]
pub struct Router {
    /// Normalized path → (component, route as written).
    exact: HashMap<String, (String, String)>,
    /// Wildcard prefixes (without the trailing `/...`), longest first, with (component, route).
    prefixes: Vec<(String, (String, String))>,
}

impl Router {
    /// Builds the table from `(route, component)` pairs; rejects malformed and duplicate routes.
    pub fn new(routes: impl IntoIterator<Item = (String, String)>) -> Result<Router, String> {
        let mut exact = HashMap::new();
        let mut prefixes: Vec<(String, (String, String))> = Vec::new();
        for (route, component) in routes {
            if !route.starts_with('/') {
                return Err(format!("route \"{route}\" must start with '/'"));
            }
            if route.contains(':') || route.contains('*') {
                return Err(format!("route \"{route}\": parameter and glob segments are not supported; use an exact path or a trailing /..."));
            }
            if let Some(prefix) = route.strip_suffix("/...") {
                if prefix.contains("...") {
                    return Err(format!("route \"{route}\": '...' may only end a route"));
                }
                if prefixes.iter().any(|(p, _)| p == prefix) {
                    return Err(format!("duplicate route \"{route}\""));
                }
                prefixes.push((prefix.to_string(), (component, route.clone())));
            } else {
                if route.contains("...") {
                    return Err(format!(
                        "route \"{route}\": '...' may only end a route, after a '/'"
                    ));
                }
                let key = normalize(&route).to_string();
                if exact.insert(key, (component, route.clone())).is_some() {
                    return Err(format!("duplicate route \"{route}\""));
                }
            }
        }
        prefixes.sort_by(|a, b| b.0.len().cmp(&a.0.len()));
        Ok(Router { exact, prefixes })
    }

    /// The component serving `path` (the URI path, without the query) and the route that
    /// matched.
    pub fn route(&self, path: &str) -> Option<(&str, &str)> {
        let path = normalize(path);
        if let Some((c, r)) = self.exact.get(path) {
            return Some((c, r));
        }
        self.prefixes
            .iter()
            .find(|(prefix, _)| {
                path.strip_prefix(prefix.as_str()).is_some_and(|rest| {
                    rest.is_empty() || rest.starts_with('/') || prefix.is_empty()
                })
            })
            .map(|(_, (c, r))| (c.as_str(), r.as_str()))
    }
}

/// `/a/b/` and `/a/b` are the same route (as in Spin); the root stays `/`.
fn normalize(path: &str) -> &str {
    match path.strip_suffix('/') {
        Some("") | None => path,
        Some(p) => p,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let router = Router::new(
            [
                ("/api/v0/pi", "pi"),
                ("/api/v01/classify", "iris"),
                ("/api/...", "api-fallback"),
                ("/api/v0/...", "v0"),
                ("/static/...", "static"),
                ("/...", "catchall"),
            ]
            .map(|(r, c)| (r.to_string(), c.to_string())),
        )
        .unwrap();
        let cases = [
            ("/api/v0/pi", "pi"),
            ("/api/v0/pi/", "pi"),
            ("/api/v0/pie", "v0"),
            ("/api/v0/pi/extra", "v0"),
            ("/api/v0", "v0"),
            ("/api/v01/classify", "iris"),
            ("/api/v01", "api-fallback"),
            ("/api", "api-fallback"),
            ("/apix", "catchall"),
            ("/static/a/b.css", "static"),
            ("/", "catchall"),
            ("/anything", "catchall"),
        ];
        for (path, want) in cases {
            assert_eq!(
                router.route(path).map(|(c, _)| c),
                Some(want),
                "path {path}"
            );
        }
    }

    #[test]
    fn no_catchall_means_unmatched_paths_are_none() {
        let router = Router::new([("/api/v0/pi".to_string(), "pi".to_string())]).unwrap();
        assert_eq!(router.route("/api/v0/pi"), Some(("pi", "/api/v0/pi")));
        assert_eq!(router.route("/api/v0"), None);
        assert_eq!(router.route("/x"), None);
    }

    #[test]
    fn rejects_bad_routes() {
        let bad = [
            (vec!["/a", "/a"], "duplicate"),
            (vec!["/a/...", "/a/..."], "duplicate"),
            (vec!["a"], "must start with '/'"),
            (vec!["/a/:id"], "not supported"),
            (vec!["/a.../b"], "may only end"),
        ];
        for (routes, want) in bad {
            let err =
                Router::new(routes.iter().map(|r| (r.to_string(), "c".to_string()))).unwrap_err();
            assert!(err.contains(want), "{routes:?}: {err}");
        }
    }
}
