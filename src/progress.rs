//! Progress of long jobs (`fit`'s feature extraction, VGG trunk and fine-tuning), told through a callback: the
//! library prints nothing itself. The command line draws progress bars from it; a test, a bench or a service
//! passes [`Reporter::default`] (silent) or logs what it hears.

use std::sync::Arc;

/// One thing a long job says.
#[derive(Debug, Clone, Copy)]
pub enum Progress<'a> {
    /// A task of `total` steps begins.
    Begin {
        /// What it is (`radiomics + crops`).
        task: &'a str,
        /// How many steps it has.
        total: usize,
    },
    /// One step of `task` is done (from any thread).
    Step {
        /// The task.
        task: &'a str,
    },
    /// `task` is over.
    End {
        /// The task.
        task: &'a str,
    },
    /// A stage of the pipeline ended, `seconds` after the previous one.
    Stage {
        /// The stage (`cohort`, `features`, …).
        name: &'a str,
        /// Its wall time.
        seconds: f64,
    },
    /// Something the person running the job should read (a case that failed, what is being fine-tuned).
    Note(&'a str),
}

type Callback = dyn Fn(Progress<'_>) + Send + Sync;

/// Where a job's [`Progress`] goes; the default drops it.
#[derive(Clone, Default)]
pub struct Reporter(Option<Arc<Callback>>);

impl Reporter {
    /// A reporter that hands every [`Progress`] to `f`.
    pub fn new(f: impl Fn(Progress<'_>) + Send + Sync + 'static) -> Reporter {
        Reporter(Some(Arc::new(f)))
    }

    /// Tell `p`.
    pub fn report(&self, p: Progress<'_>) {
        if let Some(f) = &self.0 {
            f(p);
        }
    }

    /// [`Progress::Begin`].
    pub fn begin(&self, task: &str, total: usize) {
        self.report(Progress::Begin { task, total });
    }

    /// [`Progress::Step`].
    pub fn step(&self, task: &str) {
        self.report(Progress::Step { task });
    }

    /// [`Progress::End`].
    pub fn end(&self, task: &str) {
        self.report(Progress::End { task });
    }

    /// [`Progress::Note`].
    pub fn note(&self, text: &str) {
        self.report(Progress::Note(text));
    }
}

impl std::fmt::Debug for Reporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Reporter(callback)"
        } else {
            "Reporter(silent)"
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[test]
    fn a_reporter_hands_on_what_it_is_told_in_order_and_the_default_is_silent() {
        let heard = Arc::new(Mutex::new(Vec::new()));
        let h = heard.clone();
        let r = Reporter::new(move |p| h.lock().unwrap().push(format!("{p:?}")));
        r.begin("t", 2);
        r.step("t");
        r.end("t");
        r.note("n");
        assert_eq!(
            *heard.lock().unwrap(),
            [
                "Begin { task: \"t\", total: 2 }",
                "Step { task: \"t\" }",
                "End { task: \"t\" }",
                "Note(\"n\")"
            ]
        );
        Reporter::default().note("nobody hears this");
    }
}
