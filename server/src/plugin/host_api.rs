//! `hookline:call@0.1.0` imports, implemented on the per-call state by
//! delegating to the call's session.

use super::hookline::call::{data, media, routing, types};
use super::CallState;
use types::CallError;

impl types::Host for CallState {}

impl media::Host for CallState {
    async fn answer(&mut self) -> Result<(), CallError> {
        self.session.answer()
    }

    async fn play(
        &mut self,
        prompts: Vec<String>,
        barge_in: bool,
    ) -> Result<media::PlayEnd, CallError> {
        let interrupted = self.session.play(&prompts, barge_in).await?;
        Ok(if interrupted {
            media::PlayEnd::Interrupted
        } else {
            media::PlayEnd::Finished
        })
    }

    async fn collect_digits(
        &mut self,
        options: media::CollectOptions,
    ) -> Result<media::Collected, CallError> {
        let (digits, end) = self.session.collect_digits(&options).await?;
        use crate::call::collect::End;
        let end = match end {
            End::MaxDigits => media::CollectEnd::MaxDigits,
            End::Terminator => media::CollectEnd::Terminator,
            End::Timeout => media::CollectEnd::Timeout,
        };
        Ok(media::Collected { digits, end })
    }

    async fn sleep(&mut self, ms: u32) -> Result<(), CallError> {
        self.session.sleep(ms).await
    }
}

impl routing::Host for CallState {
    async fn hangup(&mut self) -> Result<(), CallError> {
        self.session.hangup()
    }

    async fn dial(
        &mut self,
        options: routing::DialOptions,
    ) -> Result<routing::DialResult, CallError> {
        use crate::call::dial::{DialStatus, Target};
        if options.targets.is_empty() || options.targets.len() > 32 {
            return Err(CallError::InvalidArgument(
                "dial needs 1 to 32 targets".into(),
            ));
        }
        let targets: Vec<Target> = options
            .targets
            .into_iter()
            .map(|t| match t {
                routing::DialTarget::Extension(e) => Target::Extension(e),
                routing::DialTarget::Uri(u) => Target::Uri(u),
                routing::DialTarget::Number(n) => Target::Number(n),
            })
            .collect();
        let timeout =
            std::time::Duration::from_millis(options.timeout_ms.clamp(1000, 600_000).into());
        let out = self
            .session
            .dial(&targets, timeout, options.caller_id)
            .await?;
        Ok(routing::DialResult {
            status: match out.status {
                DialStatus::Completed => routing::DialStatus::Completed,
                DialStatus::NoAnswer => routing::DialStatus::NoAnswer,
                DialStatus::Busy => routing::DialStatus::Busy,
                DialStatus::Failed => routing::DialStatus::Failed,
            },
            answered_target: out.answered_target,
            talk_seconds: out.talk_seconds,
        })
    }
}

impl data::Host for CallState {
    async fn log(&mut self, level: data::LogLevel, message: String) {
        self.session.log(level, &message);
    }

    async fn mark(&mut self, step: String) {
        self.session.mark(&step);
    }
}
