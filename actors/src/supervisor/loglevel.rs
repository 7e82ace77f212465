//! The log-level broadcaster: applies levels to the supervisor's own
//! subscriber and pushes them to every worker, so one `mcrctl log-level
//! set` reaches every process at once.

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tracing::info;

use super::handles::{LogLevelMsg, WmMsg, Workers};
use super::shared::Shared;

pub struct LogLevelActor;

impl Actor for LogLevelActor {
    type Msg = LogLevelMsg;
    type State = Arc<Shared>;
    type Arguments = Arc<Shared>;

    async fn pre_start(
        &self,
        _me: ActorRef<LogLevelMsg>,
        shared: Arc<Shared>,
    ) -> Result<Arc<Shared>, ActorProcessingErr> {
        // After a restart, re-apply what the config says: a level change
        // that was in flight when we failed is not lost.
        (shared.set_levels)(&shared.levels());
        Ok(shared)
    }

    async fn handle(
        &self,
        _me: ActorRef<LogLevelMsg>,
        msg: LogLevelMsg,
        shared: &mut Arc<Shared>,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            LogLevelMsg::Apply(levels) => {
                (shared.set_levels)(&levels);
                info!(target: "Supervisor", "log levels now: global {}, overrides {:?}", levels.global, levels.facilities);
                Workers::tell(WmMsg::SetLevels(levels));
            }
            LogLevelMsg::Panic => panic!("fault injection: loglevel actor panic requested"),
            LogLevelMsg::Ops(o) => o.run("loglevel").await,
        }
        Ok(())
    }
}
