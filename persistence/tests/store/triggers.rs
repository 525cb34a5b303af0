//! Triggers: webhooks find their workflow by key; each cron tick of a workflow starts one
//! run however many schedulers try to fire it.

use aos_domain::journal::RunTrigger;
use aos_domain::ports::{RunStore, TriggerStore, TriggerTarget, WorkflowStore};
use aos_domain::run::RunId;

use crate::runs::{T0, new_run};
use crate::support::{Ctx, on_every_backend};
use crate::workflows;

on_every_backend!(
    a_webhook_key_finds_its_workflow_and_nothing_else,
    only_active_workflows_are_listed_for_the_scheduler,
    a_tick_fires_once_however_often_it_is_fired,
    concurrent_schedulers_fire_each_tick_once,
);

async fn target(t: &Ctx, key: &str) -> TriggerTarget {
    t.store
        .webhook_target(key)
        .await
        .expect("look up")
        .expect("the key is known")
}

async fn a_webhook_key_finds_its_workflow_and_nothing_else(t: Ctx) {
    let ada = t.user("ada").await;
    let (workspace, scope) = t.workspace(&ada, "Acme").await;
    let workflow = workflows::create(&t, &scope, "Hooked").await;

    let found = target(&t, &workflow.webhook_key).await;
    let unknown = t.store.webhook_target("whk_nope").await.expect("look up");

    assert_eq!(
        (
            found.workspace_id,
            found.workflow_id,
            found.version,
            found.active
        ),
        (workspace.id, workflow.id, 1, false)
    );
    assert_eq!(found.definition, workflow.definition);
    assert!(unknown.is_none());
}

async fn only_active_workflows_are_listed_for_the_scheduler(t: Ctx) {
    let ada = t.user("ada").await;
    let (_, scope) = t.workspace(&ada, "Acme").await;
    let active = workflows::create(&t, &scope, "On").await;
    let _inactive = workflows::create(&t, &scope, "Off").await;
    t.store
        .set_workflow_active(&scope, active.id, true)
        .await
        .expect("activate");

    let listed = t.store.active_workflows().await.expect("list");

    let ids: Vec<_> = listed.iter().map(|target| target.workflow_id).collect();
    assert_eq!(ids, vec![active.id]);
}

async fn a_tick_fires_once_however_often_it_is_fired(t: Ctx) {
    let ada = t.user("ada").await;
    let (_, scope) = t.workspace(&ada, "Acme").await;
    let workflow = workflows::create(&t, &scope, "Nightly").await;
    let target = target(&t, &workflow.webhook_key).await;
    let scheduled = |run_id| {
        let mut run = new_run(&workflow, T0);
        run.id = run_id;
        run.trigger = RunTrigger::Schedule;
        run
    };

    let first = t
        .store
        .fire_schedule_tick(&target, T0, scheduled(RunId::generate()))
        .await
        .expect("fire");
    let again = t
        .store
        .fire_schedule_tick(&target, T0, scheduled(RunId::generate()))
        .await
        .expect("fire again");
    let next_tick = t
        .store
        .fire_schedule_tick(&target, T0 + 1_000, scheduled(RunId::generate()))
        .await
        .expect("fire the next tick");

    let first = first.expect("the first firing starts a run");
    assert_eq!(first.trigger, RunTrigger::Schedule);
    assert!(again.is_none(), "a second firing of a tick starts nothing");
    assert!(next_tick.is_some());
    let stored = t
        .store
        .run(&scope, first.id)
        .await
        .expect("read")
        .expect("the run exists");
    assert_eq!(stored.id, first.id);
}

async fn concurrent_schedulers_fire_each_tick_once(t: Ctx) {
    let ada = t.user("ada").await;
    let (_, scope) = t.workspace(&ada, "Acme").await;
    let workflow = workflows::create(&t, &scope, "Nightly").await;
    let target = target(&t, &workflow.webhook_key).await;

    let attempts = (0..8).map(|_| {
        let mut run = new_run(&workflow, T0);
        run.trigger = RunTrigger::Schedule;
        t.store.fire_schedule_tick(&target, T0, run)
    });
    let outcomes = futures::future::join_all(attempts).await;

    let fired = outcomes
        .into_iter()
        .map(|outcome| outcome.expect("fire"))
        .filter(Option::is_some)
        .count();
    assert_eq!(fired, 1);
}
