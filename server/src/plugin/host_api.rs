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
}

impl data::Host for CallState {
    async fn log(&mut self, level: data::LogLevel, message: String) {
        self.session.log(level, &message);
    }

    async fn mark(&mut self, step: String) {
        self.session.mark(&step);
    }
}
