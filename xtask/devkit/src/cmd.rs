//! Running commands the way every workflow here does: print the command line (with the
//! environment it sets), run it, and fail with that command line on a non-zero exit.

use std::fmt::Write as _;
use std::process::{Command, Stdio};

use anyhow::{ensure, Context, Result};

/// Prints `cmd`, runs it with inherited stdio, fails unless it exits 0.
pub fn run(cmd: &mut Command) -> Result<()> {
    let shown = shown(cmd);
    println!("$ {shown}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {shown}"))?;
    ensure!(status.success(), "`{shown}` failed: {status}");
    Ok(())
}

/// Like [`run`], returning stdout (stderr is passed through).
pub fn capture(cmd: &mut Command) -> Result<String> {
    let shown = shown(cmd);
    println!("$ {shown}");
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot start {shown}"))?;
    ensure!(out.status.success(), "`{shown}` failed: {}", out.status);
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether `cmd` runs and exits 0; nothing printed (a probe, such as "is it installed?").
pub fn succeeds(cmd: &mut Command) -> bool {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The command line as a shell would take it: `VAR=value program args`, quoted where needed.
pub fn shown(cmd: &Command) -> String {
    let mut s = String::new();
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            let _ = write!(
                s,
                "{}={} ",
                k.to_string_lossy(),
                quoted(&v.to_string_lossy())
            );
        }
    }
    s.push_str(&cmd.get_program().to_string_lossy());
    for a in cmd.get_args() {
        let _ = write!(s, " {}", quoted(&a.to_string_lossy()));
    }
    s
}

fn quoted(a: &str) -> String {
    if a.is_empty() || a.contains(|c: char| c.is_whitespace() || "'\"$&|;<>()*?`\\".contains(c)) {
        format!("'{}'", a.replace('\'', r"'\''"))
    } else {
        a.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_quotes_what_a_shell_would_split_or_expand() {
        let mut c = Command::new("python3");
        c.env("A", "1").args(["-c", "print('x y')", "plain", ""]);
        assert_eq!(shown(&c), r#"A=1 python3 -c 'print('\''x y'\'')' plain ''"#);
    }

    #[test]
    fn run_fails_on_a_non_zero_exit_and_names_the_command() {
        let err = run(Command::new("sh").args(["-c", "exit 3"])).unwrap_err();
        assert!(err.to_string().contains("sh -c 'exit 3'"), "{err}");
        assert!(run(&mut Command::new("true")).is_ok());
    }

    #[test]
    fn capture_returns_stdout() {
        assert_eq!(capture(Command::new("echo").arg("hi")).unwrap(), "hi\n");
        assert!(capture(&mut Command::new("false")).is_err());
    }
}
