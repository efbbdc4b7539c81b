"""`placement_executor`: the executor each placement decision names, chosen per run.

Dagster fixes a job's executor when it is defined; the reasoning plane chooses per run. This
executor is a selector over Dagster's own executors, configured by the run config that the
placement sensor sets from the decision (`reasoning_plane.launch.run_config`):

* ``in_process`` / ``multiprocess`` (default): CPU work, or work on the local machine;
* ``k8s``: dagster-k8s's `k8s_job_executor`, each step a Kubernetes Job with the decision's
  ``nvidia.com/gpu`` limit, node selector and tolerations (``step_k8s_config``) in the team's
  namespace.

It delegates to the chosen executor's own creation function, so behaviour is exactly Dagster's.
"""

import dagster as dg
from dagster_k8s import k8s_job_executor

_CHOICES = {
    "in_process": dg.in_process_executor,
    "multiprocess": dg.multiprocess_executor,
    "k8s": k8s_job_executor,
}


@dg.executor(
    name="placement_executor",
    config_schema=dg.Field(
        dg.Selector({name: ex.config_schema.as_field() for name, ex in _CHOICES.items()}),
        default_value={"multiprocess": {}},
        description="Which executor runs the steps: set per run by the placement decision.",
    ),
    requirements=dg.multiple_process_executor_requirements(),
)
def placement_executor(init_context: dg.InitExecutorContext) -> dg.Executor:
    ((choice, config),) = init_context.executor_config.items()
    target = _CHOICES[choice]
    return target.executor_creation_fn(
        init_context._replace(executor_def=target, executor_config=config)
    )
