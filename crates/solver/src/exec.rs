//! What runs a RUN step's container. The solver asks an [`Executor`]; whittle's runtime is one,
//! and tests use fakes that need no root (see `tests/`).

use whittle_runtime::{CancelToken, ContainerSpec, ExitStatus, OutputSink, Runtime};

/// Runs a container to completion, its output line by line to `sink`.
pub trait Executor: Sync {
    fn run(
        &self,
        spec: &ContainerSpec,
        sink: &mut dyn OutputSink,
        cancel: &CancelToken,
    ) -> whittle_runtime::Result<ExitStatus>;
}

impl Executor for Runtime {
    fn run(
        &self,
        spec: &ContainerSpec,
        sink: &mut dyn OutputSink,
        cancel: &CancelToken,
    ) -> whittle_runtime::Result<ExitStatus> {
        Runtime::run(self, spec, sink, cancel)
    }
}
