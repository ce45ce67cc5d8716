//! Request path → component id, with Spin's route rules.
//!
//! A route is either exact (`/api/v0/pi`) or a trailing wildcard (`/api/...`, which matches
//! `/api` itself and everything below it; `/...` matches every path). When several routes match,
//! the most specific wins: an exact route beats any wildcard, and a longer wildcard prefix beats
//! a shorter one. The table is built once per manifest (when it is loaded); matching allocates
//! nothing.

use std::collections::HashMap;
use std::sync::Arc;

/// A route table leading to `T` (a component id in the host).
#[derive(Debug, Clone, PartialEq)]
pub struct Router<T> {
    /// Every route as written, with its target, in manifest order.
    routes: Vec<(Arc<str>, T)>,
    /// Normalized path → index into `routes`.
    exact: HashMap<String, usize>,
    /// Wildcard prefixes (without the trailing `/...`), longest first, with an index into
    /// `routes`.
    prefixes: Vec<(String, usize)>,
}

impl<T> Router<T> {
    /// Builds the table from `(route, target)` pairs; rejects malformed and duplicate routes.
    pub fn new(routes: impl IntoIterator<Item = (String, T)>) -> Result<Router<T>, String> {
        let mut table = Vec::new();
        let mut exact = HashMap::new();
        let mut prefixes: Vec<(String, usize)> = Vec::new();
        for (route, target) in routes {
            if !route.starts_with('/') {
                return Err(format!("route \"{route}\" must start with '/'"));
            }
            if route.contains(':') || route.contains('*') {
                return Err(format!("route \"{route}\": parameter and glob segments are not supported; use an exact path or a trailing /..."));
            }
            let index = table.len();
            if let Some(prefix) = route.strip_suffix("/...") {
                if prefix.contains("...") {
                    return Err(format!("route \"{route}\": '...' may only end a route"));
                }
                if prefixes.iter().any(|(p, _)| p == prefix) {
                    return Err(format!("duplicate route \"{route}\""));
                }
                prefixes.push((prefix.to_string(), index));
            } else {
                if route.contains("...") {
                    return Err(format!(
                        "route \"{route}\": '...' may only end a route, after a '/'"
                    ));
                }
                if exact.insert(normalize(&route).to_string(), index).is_some() {
                    return Err(format!("duplicate route \"{route}\""));
                }
            }
            table.push((Arc::from(route.as_str()), target));
        }
        prefixes.sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        Ok(Router {
            routes: table,
            exact,
            prefixes,
        })
    }

    /// The target serving `path` (the URI path, without the query) and the route that matched
    /// as written (shared, so a caller can keep it without allocating).
    pub fn route(&self, path: &str) -> Option<(&T, &Arc<str>)> {
        let path = normalize(path);
        let index = self.exact.get(path).copied().or_else(|| {
            self.prefixes
                .iter()
                .find(|(prefix, _)| {
                    path.strip_prefix(prefix.as_str()).is_some_and(|rest| {
                        rest.is_empty() || rest.starts_with('/') || prefix.is_empty()
                    })
                })
                .map(|(_, i)| *i)
        })?;
        let (route, target) = &self.routes[index];
        Some((target, route))
    }

    /// Every route as written and its target, in manifest order.
    pub fn routes(&self) -> impl Iterator<Item = (&str, &T)> {
        self.routes.iter().map(|(r, t)| (&**r, t))
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
                router.route(path).map(|(c, _)| c.as_str()),
                Some(want),
                "path {path}"
            );
        }
    }

    #[test]
    fn no_catchall_means_unmatched_paths_are_none() {
        let router = Router::new([("/api/v0/pi".to_string(), "pi".to_string())]).unwrap();
        let (c, r) = router.route("/api/v0/pi").unwrap();
        assert_eq!((c.as_str(), &**r), ("pi", "/api/v0/pi"));
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
