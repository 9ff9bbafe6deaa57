//! Running helper programs (`iptables-restore`, `ip`) and turning their
//! failures into errors that carry the command line and its stderr.

use std::io::{self, Write};
use std::process::{Command, Output, Stdio};

use crate::Error;

/// The command line as a user would type it, for error messages.
pub(crate) fn describe(cmd: &Command) -> String {
    let mut line = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        line.push(' ');
        line.push_str(&arg.to_string_lossy());
    }
    line
}

/// Spawns `cmd` on the current thread, feeds it `stdin` (if any) and waits.
///
/// Stdout and stderr are captured; a non-zero exit is *not* an error here.
pub(crate) fn output(cmd: &mut Command, stdin: Option<&[u8]>) -> io::Result<Output> {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = cmd.spawn()?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // Our inputs (rule sets) are a few KiB, well under the pipe buffer, and
        // the programs read all of stdin before writing; writing before reading
        // their output cannot deadlock. Dropping the pipe sends EOF.
        let written = pipe.write_all(input);
        drop(pipe);
        // A program that fails early stops reading (EPIPE); its stderr says
        // why, so wait for it instead of reporting the broken pipe.
        if let Err(err) = written.or_else(|e| match e.kind() {
            io::ErrorKind::BrokenPipe => Ok(()),
            _ => Err(e),
        }) {
            // Reap the child before reporting, so no zombie is left behind.
            let _ = child.wait();
            return Err(err);
        }
    }
    child.wait_with_output()
}

/// Maps a spawn failure: a missing binary becomes [`Error::MissingProgram`]
/// naming the package to install.
pub(crate) fn spawn_error(cmd: &Command, package: &'static str, source: io::Error) -> Error {
    if source.kind() == io::ErrorKind::NotFound {
        Error::MissingProgram {
            program: cmd.get_program().to_string_lossy().into_owned(),
            package,
        }
    } else {
        Error::Spawn {
            command: describe(cmd),
            source,
        }
    }
}

/// Turns a non-zero exit into [`Error::Command`] with the trimmed stderr.
pub(crate) fn check(command: String, output: Output) -> Result<Output, Error> {
    if output.status.success() {
        return Ok(output);
    }
    Err(Error::Command {
        command,
        status: output.status,
        stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
    })
}

/// Runs `cmd` on the current thread (in the current namespace) and requires
/// success.
#[cfg(feature = "testing")]
pub(crate) fn run(cmd: &mut Command, package: &'static str) -> Result<Output, Error> {
    let out = output(cmd, None).map_err(|err| spawn_error(cmd, package, err))?;
    check(describe(cmd), out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_program_names_the_package() {
        let mut cmd = Command::new("braid-no-such-program");
        cmd.arg("-t");
        let err = output(&mut cmd, Some(b"x")).expect_err("not installed");
        let err = spawn_error(&cmd, "iptables", err);
        assert_eq!(
            err.to_string(),
            "braid-no-such-program was not found on PATH; install the iptables package"
        );
    }

    #[test]
    fn failure_carries_command_status_and_stderr() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "cat >/dev/null; echo 'bad rule' >&2; exit 3"]);
        let out = output(&mut cmd, Some(b"*nat\nCOMMIT\n")).expect("ran");
        let err = check(describe(&cmd), out).expect_err("exit 3");
        let text = err.to_string();
        assert!(text.starts_with("`sh -c cat"), "{text}");
        assert!(
            text.contains("exit status: 3") && text.ends_with(": bad rule"),
            "{text}"
        );
    }
}
