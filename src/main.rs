//! The `tessera` binary: parse the command line, load settings, dispatch.

use std::process::ExitCode;
use std::sync::Arc;

use serde_json::Value;

use tessera::cli::{ApiKeyCommand, Cli, Command};
use tessera::clock::{Clock, SystemClock};
use tessera::commands::{self, CommandError};
use tessera::config::Settings;
use tessera::startup::Application;

fn main() -> ExitCode {
    tessera::install_crypto_provider();
    let (cli, explicit) = Cli::parse_with_sources();
    let settings = match Settings::load(&cli.settings, &explicit) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let _log = tessera::telemetry::init(settings.log_format);
    let result: Result<Value, CommandError> = match cli.command {
        None | Some(Command::Serve) => return serve(settings),
        Some(Command::Migrate) => commands::migrate(&settings),
        Some(Command::Org(c)) => commands::org(&settings, c),
        Some(Command::User(c)) => commands::user(&settings, c, std::io::stdin().lock()),
        Some(Command::Client(c)) => commands::client(&settings, c),
        Some(Command::ApiKey(ApiKeyCommand::Check { key })) => {
            // A verdict, not an error: printed on stdout either way; the exit code is 0
            // for a valid key, 1 otherwise (docs/spec.md §1).
            let (valid, verdict) = commands::check_key(&settings, &key);
            println!("{verdict}");
            return if valid {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            };
        }
        Some(Command::ApiKey(c)) => commands::api_key(&settings, c),
        Some(Command::Keys(c)) => commands::keys(&settings, c, SystemClock.now()),
    };
    match result {
        Ok(v) => {
            println!("{v}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(settings: Settings) -> ExitCode {
    let system = actix_web::rt::System::new();
    let result = system.block_on(async move {
        let app = Application::build(settings, Arc::new(SystemClock))?;
        let state = app.state();
        let host = state
            .settings
            .bind
            .rsplit_once(':')
            .map_or("127.0.0.1", |(h, _)| h);
        let host = if host == "0.0.0.0" || host == "[::]" {
            "127.0.0.1"
        } else {
            host
        };
        let url = format!("http://{host}:{}", app.port());
        // The banner is for a person; a closed stdout (a supervisor that stopped reading)
        // must not take the server down, so write errors are ignored instead of panicking.
        let accounts = state
            .conn()
            .ok()
            .and_then(|mut conn| tessera::users::store::count(&mut conn).ok());
        let banner = tessera::banner::text(&url, &state.issuer, accounts);
        {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(banner.as_bytes());
            let _ = out.flush();
        }
        app.run_until_stopped()
            .await
            .map_err(tessera::startup::StartupError::from)
    });
    match result {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
