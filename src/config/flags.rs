//! Each setting's command-line flag, made from the settings table (its help, `[env: …]` and `[default: …]`),
//! the flag of a secret setting's file twin, and the values given read back into [`RawSettings`]. Which
//! command takes which settings is [`super::cli`]'s.

use clap::{Arg, ArgAction, ArgMatches, Command};

use super::raw::RawSettings;
use super::setting::{FlagKind, Setting};

/// The flag of one setting; its id is the variable's name.
pub(super) fn setting_arg(s: Setting) -> Arg {
    let mut help = format!("{} [env: {}]", s.help(), s.env());
    if let Some(d) = s.default() {
        help.push_str(&format!(" [default: {d}]"));
    }
    let arg = Arg::new(s.env()).long(s.flag()).help(help).help_heading("Configuration");
    match s.flag_kind() {
        FlagKind::Value => arg.value_name("VALUE"),
        FlagKind::Repeated => arg.value_name("VALUE").action(ArgAction::Append),
        FlagKind::Switch => arg.action(ArgAction::SetTrue),
    }
}

/// A flag's value as the variable would hold it: repeated values joined by commas, a switch as "true".
fn flag_value(m: &ArgMatches, id: &str) -> Option<String> {
    match Setting::ALL.iter().find(|s| s.env() == id).map(|s| s.flag_kind()) {
        Some(FlagKind::Repeated) => m.get_many::<String>(id).map(|v| v.cloned().collect::<Vec<_>>().join(",")),
        Some(FlagKind::Switch) => m.get_flag(id).then(|| "true".to_string()),
        _ => m.get_one::<String>(id).cloned(),
    }
}

/// The flag of a secret setting's file twin (`--kafka-sasl-password-file`); its id is the twin variable's name.
fn file_arg(s: Setting) -> Option<Arg> {
    let (env, flag) = (s.file_env()?, s.file_flag()?);
    let help = format!(
        "File holding the value of --{} (read once at start, one trailing newline removed; for Docker secrets and systemd credentials) [env: {env}]",
        s.flag()
    );
    Some(Arg::new(env).long(flag).value_name("PATH").help(help).help_heading("Configuration"))
}

/// Adds one flag per setting to a command, and the file twin's flag after each secret one.
pub(super) fn with_settings(cmd: Command, settings: &[Setting]) -> Command {
    settings.iter().fold(cmd, |cmd, &s| {
        let cmd = cmd.arg(setting_arg(s));
        match file_arg(s) {
            Some(twin) => cmd.arg(twin),
            None => cmd,
        }
    })
}

/// The raw values of `settings` (all defined on the command that produced `m`, with their file twins): flags,
/// then variables.
pub(super) fn raw_settings(m: &ArgMatches, settings: &[Setting], env: impl Fn(&str) -> Option<String>) -> RawSettings {
    RawSettings::collect(settings, |id| flag_value(m, id), env)
}
