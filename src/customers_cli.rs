//! `ringback customers import FILE.csv [--replace]` and `ringback customers
//! export`: the customer directory to and from CSV (the format is
//! `ringback_customers::csv_format`), against the store of the
//! configuration (`database.url`).
//!
//! An import is one transaction: every bad row is reported as
//! `FILE:LINE: reason` and then nothing is imported. A running server sees
//! the change within `customers.refresh_secs`.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use ringback_customers::csv_format;

use crate::config::Config;
use crate::store::customers::ImportError;
use crate::store::Store;

fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => Some(rt),
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            None
        }
    }
}

/// Import `file` into the directory (`replace`: instead of it).
pub fn import(cfg: &Config, file: &Path, replace: bool) -> ExitCode {
    let t0 = Instant::now();
    let shown = file.display();
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {shown}: cannot read: {e}");
            return ExitCode::from(2);
        }
    };
    let rows = match csv_format::parse(&bytes) {
        Ok(rows) => rows,
        Err(errors) => {
            for e in &errors {
                eprintln!("{shown}:{}: {}", e.line, e.reason);
            }
            eprintln!(
                "import failed: {} bad row(s) in {shown}; nothing was imported",
                errors.len()
            );
            return ExitCode::FAILURE;
        }
    };
    let Some(rt) = runtime() else {
        return ExitCode::FAILURE;
    };
    let lines: Vec<u64> = rows.iter().map(|r| r.line).collect();
    let customers: Vec<_> = rows.into_iter().map(|r| r.customer).collect();
    let result = rt.block_on(async {
        let store = Store::connect(&cfg.database.url).await?;
        let imported = store.import_customers(&customers, replace).await;
        if let Store::Sqlite(p) = &store {
            p.close().await;
        }
        Ok::<_, anyhow::Error>(imported)
    });
    match result {
        Ok(Ok(version)) => {
            let numbers: usize = customers.iter().map(|c| c.numbers.len()).sum();
            eprintln!(
                "imported {} customer(s) with {numbers} number(s) from {shown}{} in {:.0} ms \
                 (directory version {version})",
                customers.len(),
                if replace {
                    ", replacing the directory"
                } else {
                    ""
                },
                t0.elapsed().as_secs_f64() * 1e3
            );
            ExitCode::SUCCESS
        }
        Ok(Err(ImportError::Taken(taken))) => {
            for t in &taken {
                let line = lines.get(t.row).copied().unwrap_or(0);
                eprintln!(
                    "{shown}:{line}: `number`: {} already belongs to customer {} ({})",
                    t.number, t.owner, t.owner_name
                );
            }
            eprintln!(
                "import failed: {} number(s) of {shown} are already in the directory \
                 (use --replace to replace the directory); nothing was imported",
                taken.len()
            );
            ExitCode::FAILURE
        }
        Ok(Err(ImportError::Other(e))) | Err(e) => {
            eprintln!("error: {e:#}; nothing was imported");
            ExitCode::FAILURE
        }
    }
}

/// Write the directory as CSV to standard output.
pub fn export(cfg: &Config) -> ExitCode {
    let Some(rt) = runtime() else {
        return ExitCode::FAILURE;
    };
    let all = rt.block_on(async {
        let store = Store::connect(&cfg.database.url).await?;
        store.all_customers().await
    });
    let records = match all {
        Ok((_, records)) => records,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let written = csv_format::write(&mut out, records.iter().map(|r| &r.customer))
        .map_err(|e| e.to_string())
        .and_then(|()| out.flush().map_err(|e| e.to_string()));
    match written {
        Ok(()) => {
            eprintln!("exported {} customer(s)", records.len());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: cannot write: {e}");
            ExitCode::FAILURE
        }
    }
}
