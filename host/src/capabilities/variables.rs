//! Spin variables: `spin:variables/variables@3.0.0` and `wasi:config/store@0.2.0-draft-2024-09-27`.
//!
//! A component sees only its own variables (`[component.NAME.variables]`), whose templates may
//! refer to application variables (`[variables]`). As in Spin, an application variable's value
//! comes from the environment provider first (`SPIN_VARIABLE_<NAME>`, the name upper-cased),
//! else from its default; a required variable without a value stops the version from loading.
//! Values are resolved once per version at load ([`resolve`]), so a request reads a map.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use wasmtime::component::{Accessor, HasData, Linker};

use super::bindings::spin::variables::variables as spin_variables;
use super::bindings::wasi::config::store as wasi_config;
use super::CapabilitiesView;
use crate::spec::{ComponentVariables, TemplatePart, VariableName};

/// The environment variable the environment provider reads for an application variable.
pub fn environment_key(name: &VariableName) -> String {
    format!("SPIN_VARIABLE_{}", name.as_str().to_ascii_uppercase())
}

/// One version's variables, resolved: component variable name → value.
#[derive(Debug, Default)]
pub struct Resolved(BTreeMap<VariableName, String>);

impl Resolved {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.as_str() == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Resolves a component's variables with `provider` (the environment in fnhost) in front of
/// the defaults. Like Spin (which checks every required variable when the app starts), it fails
/// naming a required application variable no provider sets, used by this component or not.
pub fn resolve(
    vars: &ComponentVariables,
    provider: impl Fn(&str) -> Option<String>,
) -> Result<Resolved> {
    let mut app_values = BTreeMap::new();
    for (name, decl) in vars.app.iter() {
        let key = environment_key(name);
        let value = match (provider(&key), &decl.default) {
            (Some(v), _) => v,
            (None, Some(d)) => d.clone(),
            (None, None) => bail!(
                "variable \"{name}\" is required but has no value: set {key} in fnhost's environment"
            ),
        };
        app_values.insert(name, value);
    }
    let resolved = vars
        .component
        .iter()
        .map(|(name, template)| {
            let value = template
                .parts()
                .iter()
                .map(|part| match part {
                    TemplatePart::Text(t) => t.as_str(),
                    // Every reference is declared (`ComponentVariables::new`).
                    TemplatePart::Variable(app) => app_values[app].as_str(),
                })
                .collect::<String>();
            (name.clone(), value)
        })
        .collect();
    Ok(Resolved(resolved))
}

/// The `HasData` of both interfaces: the resolved variables of the instance's version.
pub struct Variables;

impl HasData for Variables {
    type Data<'a> = &'a Resolved;
}

pub fn add_to_linker<T: CapabilitiesView + 'static>(linker: &mut Linker<T>) -> Result<()> {
    fn variables<T: CapabilitiesView>(t: &mut T) -> &Resolved {
        t.capabilities().state.variables.as_ref()
    }
    spin_variables::add_to_linker::<T, Variables>(linker, variables::<T>)?;
    wasi_config::add_to_linker::<T, Variables>(linker, variables::<T>)?;
    Ok(())
}

impl spin_variables::Host for &Resolved {}

impl<T> spin_variables::HostWithStore<T> for Variables {
    async fn get(
        accessor: &Accessor<T, Self>,
        name: String,
    ) -> wasmtime::Result<Result<String, spin_variables::Error>> {
        Ok(accessor.with(|mut access| {
            let vars: &Resolved = access.get();
            if VariableName::new(&name).is_err() {
                return Err(spin_variables::Error::InvalidName(format!(
                    "\"{name}\" is not a variable name (lower_snake_case)"
                )));
            }
            vars.get(&name)
                .map(str::to_string)
                .ok_or_else(|| spin_variables::Error::Undefined(format!("no variable \"{name}\"")))
        }))
    }
}

impl wasi_config::Host for &Resolved {
    fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<String>, wasi_config::Error>> {
        Ok(Ok(Resolved::get(self, &key).map(str::to_string)))
    }

    fn get_all(&mut self) -> wasmtime::Result<Result<Vec<(String, String)>, wasi_config::Error>> {
        Ok(Ok(self
            .0
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.clone()))
            .collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{AppVariable, Template};
    use std::sync::Arc;

    fn vars(app: &[(&str, Option<&str>, bool)], component: &[(&str, &str)]) -> ComponentVariables {
        let app = app
            .iter()
            .map(|(n, default, required)| {
                (
                    VariableName::new(n).unwrap(),
                    AppVariable::new(default.map(str::to_string), *required, false).unwrap(),
                )
            })
            .collect();
        let component = component
            .iter()
            .map(|(n, t)| (VariableName::new(n).unwrap(), Template::parse(t).unwrap()))
            .collect();
        ComponentVariables::new(Arc::new(app), component).unwrap()
    }

    #[test]
    fn environment_before_default_and_required_needs_a_value() {
        let v = vars(
            &[("host", Some("example.com"), false), ("token", None, true)],
            &[
                ("url", "https://{{ host }}/{{host}}"),
                ("auth", "Bearer {{ token }}"),
            ],
        );
        let env = |key: &str| (key == "SPIN_VARIABLE_TOKEN").then(|| "t0k".to_string());
        let r = resolve(&v, env).unwrap();
        assert_eq!(r.get("url"), Some("https://example.com/example.com"));
        assert_eq!(r.get("auth"), Some("Bearer t0k"));
        let env = |key: &str| {
            (key == "SPIN_VARIABLE_HOST" || key == "SPIN_VARIABLE_TOKEN").then(|| "x".to_string())
        };
        assert_eq!(resolve(&v, env).unwrap().get("url"), Some("https://x/x"));
        let err = resolve(&v, |_| None).unwrap_err().to_string();
        assert!(
            err.contains("\"token\" is required") && err.contains("SPIN_VARIABLE_TOKEN"),
            "{err}"
        );
    }

    #[test]
    fn every_required_variable_needs_a_value() {
        let v = vars(&[("token", None, true)], &[("plain", "p")]);
        assert!(resolve(&v, |_| None).is_err());
        let env = |key: &str| (key == "SPIN_VARIABLE_TOKEN").then(|| "t".to_string());
        assert_eq!(resolve(&v, env).unwrap().get("plain"), Some("p"));
    }
}
