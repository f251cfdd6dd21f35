//! Workflows: jobs in a DAG plus how Airflow should schedule them.
//!
//! A definition is a sequential list ([`WorkflowBuilder::jobs`], each job
//! after the previous) or a graph in BigFlow's shape `{job: [jobs that depend
//! on it]}` ([`WorkflowBuilder::graph`]); [`WorkflowBuilder::job`] and
//! [`WorkflowBuilder::edge`] build the same graph by id. [`WorkflowBuilder::build`]
//! rejects bad ids, duplicates, unknown dependencies and cycles, naming the
//! culprit. The sequential run order is BigFlow's: a depth-first walk that
//! places every job after all of its parents, in definition order.

use std::collections::HashSet;
use std::fmt;

use indexmap::IndexMap;

use crate::config::Config;
use crate::job::{JobRef, is_identifier};
use crate::schedule::{Schedule, ScheduleError, StartTimeFactory};

/// The Airflow Variable that names the config environment, by default.
pub const DEFAULT_ENV_VARIABLE: &str = "env";

/// A workflow definition that cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DefinitionError {
    /// A workflow or job id is not an identifier.
    #[error(
        "{what} id '{id}' is not an identifier; use letters, digits and '_' (not starting with a digit)"
    )]
    BadId {
        /// "workflow" or "job".
        what: &'static str,
        /// The id.
        id: String,
    },
    /// Two different jobs share an id.
    #[error(
        "workflow '{workflow}' has two different jobs with id '{job}'; job ids must be unique within a workflow"
    )]
    DuplicateJob {
        /// The workflow.
        workflow: String,
        /// The id.
        job: String,
    },
    /// An edge names a job that is not in the workflow.
    #[error(
        "workflow '{workflow}': dependency {parent} -> {child} names unknown job '{unknown}'; add it with .job(...) first"
    )]
    UnknownDependency {
        /// The workflow.
        workflow: String,
        /// Upstream id.
        parent: String,
        /// Downstream id.
        child: String,
        /// Which of them is unknown.
        unknown: String,
    },
    /// The graph has a cycle.
    #[error("workflow '{workflow}' has a cycle: {cycle}")]
    Cycle {
        /// The workflow.
        workflow: String,
        /// `a -> b -> a`.
        cycle: String,
    },
    /// The workflow has no jobs.
    #[error(
        "workflow '{workflow}' has no jobs; add at least one with .jobs([...]) or .graph([...])"
    )]
    Empty {
        /// The workflow.
        workflow: String,
    },
    /// The schedule is invalid.
    #[error("workflow '{workflow}': {source}")]
    Schedule {
        /// The workflow.
        workflow: String,
        /// Why.
        source: ScheduleError,
    },
    /// A secret or Airflow variable name is unusable.
    #[error(
        "workflow '{workflow}': {what} '{name}' is not a valid name; use letters, digits and '_' (not starting with a digit)"
    )]
    BadName {
        /// The workflow.
        workflow: String,
        /// "secret" or "env_variable".
        what: &'static str,
        /// The name.
        name: String,
    },
}

/// A validated workflow.
#[derive(Clone)]
pub struct Workflow {
    id: String,
    jobs: IndexMap<String, JobRef>,
    parents: IndexMap<String, Vec<String>>,
    order: Vec<String>,
    schedule: Schedule,
    start_time_factory: StartTimeFactory,
    depends_on_past: bool,
    secrets: Vec<String>,
    env_variable: String,
    config: Option<Config>,
}

impl fmt::Debug for Workflow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Workflow")
            .field("id", &self.id)
            .field("order", &self.order)
            .field("schedule", &self.schedule)
            .finish_non_exhaustive()
    }
}

impl Workflow {
    /// Starts a workflow definition.
    pub fn builder(id: impl Into<String>) -> WorkflowBuilder {
        WorkflowBuilder {
            id: id.into(),
            nodes: Vec::new(),
            graph: IndexMap::new(),
            schedule: None,
            start_time_factory: StartTimeFactory::default(),
            depends_on_past: true,
            secrets: Vec::new(),
            env_variable: DEFAULT_ENV_VARIABLE.to_string(),
            config: None,
        }
    }

    /// The workflow id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Jobs in BigFlow's sequential run order.
    pub fn sequential_order(&self) -> impl Iterator<Item = &JobRef> {
        self.order.iter().map(|id| &self.jobs[id])
    }

    /// A job by id.
    pub fn job(&self, id: &str) -> Option<&JobRef> {
        self.jobs.get(id)
    }

    /// Job ids in sequential order.
    pub fn job_ids(&self) -> impl Iterator<Item = &str> {
        self.order.iter().map(String::as_str)
    }

    /// The jobs a job waits for, in the order they were discovered.
    pub fn parents(&self, job_id: &str) -> &[String] {
        self.parents.get(job_id).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The schedule.
    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// The start-time factory.
    pub fn start_time_factory(&self) -> &StartTimeFactory {
        &self.start_time_factory
    }

    /// Whether a run waits for the previous run's success.
    pub fn depends_on_past(&self) -> bool {
        self.depends_on_past
    }

    /// Kubernetes secrets exposed to the jobs as environment variables.
    pub fn secrets(&self) -> &[String] {
        &self.secrets
    }

    /// The Airflow Variable that names the config environment.
    pub fn env_variable(&self) -> &str {
        &self.env_variable
    }

    /// The workflow's own configuration, if any.
    pub fn config(&self) -> Option<&Config> {
        self.config.as_ref()
    }
}

/// Builds a [`Workflow`]; see the module docs.
pub struct WorkflowBuilder {
    id: String,
    nodes: Vec<JobRef>,
    graph: IndexMap<String, Vec<String>>,
    schedule: Option<String>,
    start_time_factory: StartTimeFactory,
    depends_on_past: bool,
    secrets: Vec<String>,
    env_variable: String,
    config: Option<Config>,
}

impl WorkflowBuilder {
    fn register(&mut self, job: JobRef) -> String {
        let id = job.id().to_string();
        if !self.nodes.iter().any(|n| n.same_as(&job)) {
            self.nodes.push(job);
        }
        id
    }

    /// A sequential definition: each job runs after the previous one.
    pub fn jobs<J: Into<JobRef>>(mut self, jobs: impl IntoIterator<Item = J>) -> Self {
        let ids: Vec<String> = jobs.into_iter().map(|j| self.register(j.into())).collect();
        match ids.as_slice() {
            [single] => {
                self.graph.entry(single.clone()).or_default();
            }
            _ => {
                for pair in ids.windows(2) {
                    self.graph
                        .entry(pair[0].clone())
                        .or_default()
                        .push(pair[1].clone());
                }
            }
        }
        self
    }

    /// A graph definition in BigFlow's shape: each job with the jobs that depend on it.
    pub fn graph<J: Into<JobRef>, D: Into<JobRef>>(
        mut self,
        graph: impl IntoIterator<Item = (J, Vec<D>)>,
    ) -> Self {
        for (job, dependents) in graph {
            let id = self.register(job.into());
            let children: Vec<String> = dependents
                .into_iter()
                .map(|d| self.register(d.into()))
                .collect();
            self.graph.entry(id).or_default().extend(children);
        }
        self
    }

    /// Adds a job without dependencies; connect it with [`WorkflowBuilder::edge`].
    pub fn job(mut self, job: impl Into<JobRef>) -> Self {
        let id = self.register(job.into());
        self.graph.entry(id).or_default();
        self
    }

    /// Declares that `child` runs after `parent` (both by id).
    pub fn edge(mut self, parent: &str, child: &str) -> Self {
        self.graph
            .entry(parent.to_string())
            .or_default()
            .push(child.to_string());
        self
    }

    /// Cron expression or preset (default `@daily`).
    pub fn schedule_interval(mut self, schedule: &str) -> Self {
        self.schedule = Some(schedule.to_string());
        self
    }

    /// Maps the DAG's build time to its first runtime (default: daily).
    pub fn start_time_factory(mut self, factory: StartTimeFactory) -> Self {
        self.start_time_factory = factory;
        self
    }

    /// Whether a run waits for the previous run's success (default true).
    pub fn depends_on_past(mut self, value: bool) -> Self {
        self.depends_on_past = value;
        self
    }

    /// Kubernetes secrets exposed to the jobs as environment variables.
    pub fn secrets<S: Into<String>>(mut self, secrets: impl IntoIterator<Item = S>) -> Self {
        self.secrets.extend(secrets.into_iter().map(Into::into));
        self
    }

    /// The Airflow Variable naming the config environment (default `env`).
    pub fn env_variable(mut self, name: &str) -> Self {
        self.env_variable = name.to_string();
        self
    }

    /// The workflow's configuration.
    pub fn config(mut self, config: Config) -> Self {
        self.config = Some(config);
        self
    }

    /// Validates the definition.
    pub fn build(self) -> Result<Workflow, DefinitionError> {
        let wf = self.id.clone();
        if !is_identifier(&wf) {
            return Err(DefinitionError::BadId {
                what: "workflow",
                id: wf,
            });
        }
        let mut jobs: IndexMap<String, JobRef> = IndexMap::new();
        for node in &self.nodes {
            let id = node.id().to_string();
            if !is_identifier(&id) {
                return Err(DefinitionError::BadId { what: "job", id });
            }
            if jobs.insert(id.clone(), node.clone()).is_some() {
                return Err(DefinitionError::DuplicateJob {
                    workflow: wf,
                    job: id,
                });
            }
        }
        if jobs.is_empty() {
            return Err(DefinitionError::Empty { workflow: wf });
        }
        for (parent, children) in &self.graph {
            for child in children {
                if let Some(unknown) = [parent, child]
                    .into_iter()
                    .find(|id| !jobs.contains_key(id.as_str()))
                {
                    return Err(DefinitionError::UnknownDependency {
                        workflow: wf,
                        parent: parent.clone(),
                        child: child.clone(),
                        unknown: unknown.clone(),
                    });
                }
            }
        }
        if let Some(cycle) = find_cycle(&self.graph) {
            return Err(DefinitionError::Cycle {
                workflow: wf,
                cycle: cycle.join(" -> "),
            });
        }
        let schedule = match &self.schedule {
            Some(s) => Schedule::parse(s).map_err(|source| DefinitionError::Schedule {
                workflow: wf.clone(),
                source,
            })?,
            None => Schedule::default(),
        };
        for (what, name) in self
            .secrets
            .iter()
            .map(|s| ("secret", s))
            .chain(std::iter::once(("env_variable", &self.env_variable)))
        {
            if !is_identifier(name) {
                return Err(DefinitionError::BadName {
                    workflow: wf,
                    what,
                    name: name.clone(),
                });
            }
        }
        let parents = parental_map(&self.graph);
        let order = sequential_order(&parents);
        debug_assert_eq!(order.len(), jobs.len());
        Ok(Workflow {
            id: self.id,
            jobs,
            parents,
            order,
            schedule,
            start_time_factory: self.start_time_factory,
            depends_on_past: self.depends_on_past,
            secrets: self.secrets,
            env_variable: self.env_variable,
            config: self.config,
        })
    }
}

/// BigFlow's parental map: every job with its parents, in discovery order.
fn parental_map(graph: &IndexMap<String, Vec<String>>) -> IndexMap<String, Vec<String>> {
    fn fill(
        job: &str,
        graph: &IndexMap<String, Vec<String>>,
        visited: &mut HashSet<String>,
        pm: &mut IndexMap<String, Vec<String>>,
    ) {
        let Some(children) = graph.get(job) else {
            return;
        };
        if !visited.insert(job.to_string()) {
            return;
        }
        pm.entry(job.to_string()).or_default();
        for child in children {
            pm.entry(child.clone()).or_default().push(job.to_string());
            fill(child, graph, visited, pm);
        }
    }
    let mut visited = HashSet::new();
    let mut pm = IndexMap::new();
    for job in graph.keys() {
        fill(job, graph, &mut visited, &mut pm);
    }
    pm
}

/// Each job after all of its parents, walking the parental map in order.
fn sequential_order(parents: &IndexMap<String, Vec<String>>) -> Vec<String> {
    fn visit(
        job: &str,
        parents: &IndexMap<String, Vec<String>>,
        visited: &mut HashSet<String>,
        out: &mut Vec<String>,
    ) {
        if !visited.insert(job.to_string()) {
            return;
        }
        for p in &parents[job] {
            visit(p, parents, visited, out);
        }
        out.push(job.to_string());
    }
    let mut visited = HashSet::new();
    let mut out = Vec::new();
    for job in parents.keys() {
        visit(job, parents, &mut visited, &mut out);
    }
    out
}

/// The first cycle found, as a path that ends where it starts.
fn find_cycle(graph: &IndexMap<String, Vec<String>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        OnStack,
        Done,
    }
    fn dfs(
        node: &str,
        graph: &IndexMap<String, Vec<String>>,
        marks: &mut IndexMap<String, Mark>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match marks.get(node) {
            Some(Mark::Done) => return None,
            Some(Mark::OnStack) => {
                let start = stack.iter().position(|n| n == node).unwrap_or(0);
                let mut cycle = stack[start..].to_vec();
                cycle.push(node.to_string());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(node.to_string(), Mark::OnStack);
        stack.push(node.to_string());
        for child in graph.get(node).into_iter().flatten() {
            if let Some(c) = dfs(child, graph, marks, stack) {
                return Some(c);
            }
        }
        stack.pop();
        marks.insert(node.to_string(), Mark::Done);
        None
    }
    let mut marks = IndexMap::new();
    graph
        .keys()
        .find_map(|n| dfs(n, graph, &mut marks, &mut Vec::new()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::job;

    fn j(id: &str) -> JobRef {
        JobRef::new(job(id, |_| Ok(())))
    }

    fn order(wf: &Workflow) -> Vec<&str> {
        wf.job_ids().collect()
    }

    #[test]
    fn bigflow_order_for_graphs() {
        let (a, b, c, d, e) = (j("a"), j("b"), j("c"), j("d"), j("e"));
        let wf = Workflow::builder("w")
            .graph([
                (&a, vec![&b, &c]),
                (&b, vec![&d]),
                (&c, vec![&d]),
                (&e, vec![&c]),
            ])
            .build()
            .unwrap();
        assert_eq!(order(&wf), ["a", "b", "e", "c", "d"]);
        assert_eq!(wf.parents("c"), ["a", "e"]);
        assert_eq!(wf.parents("d"), ["b", "c"]);
    }

    #[test]
    fn list_is_a_chain_and_ids_build_the_same_graph() {
        let wf = Workflow::builder("w")
            .jobs([j("x"), j("y"), j("z")])
            .build()
            .unwrap();
        assert_eq!(order(&wf), ["x", "y", "z"]);
        assert_eq!(wf.parents("z"), ["y"]);
        let wf = Workflow::builder("w")
            .job(j("job1"))
            .job(j("job2"))
            .job(j("job3"))
            .job(j("job4"))
            .edge("job1", "job2")
            .edge("job1", "job3")
            .edge("job2", "job4")
            .edge("job3", "job4")
            .build()
            .unwrap();
        assert_eq!(order(&wf), ["job1", "job2", "job3", "job4"]);
    }

    #[test]
    fn rejections_name_the_culprit() {
        let (a, b, c) = (j("a"), j("b"), j("c"));
        let e = Workflow::builder("w")
            .graph([(&a, vec![&b]), (&b, vec![&c]), (&c, vec![&a])])
            .build()
            .unwrap_err();
        assert_eq!(e.to_string(), "workflow 'w' has a cycle: a -> b -> c -> a");
        let e = Workflow::builder("w")
            .jobs([j("a"), j("a")])
            .build()
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "workflow 'w' has two different jobs with id 'a'; job ids must be unique within a workflow"
        );
        let e = Workflow::builder("w")
            .job(j("a"))
            .edge("a", "ghost")
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("names unknown job 'ghost'"), "{e}");
        let e = Workflow::builder("w")
            .jobs([j("bad-id")])
            .build()
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("job id 'bad-id' is not an identifier"),
            "{e}"
        );
        let e = Workflow::builder("my-wf")
            .jobs([j("a")])
            .build()
            .unwrap_err();
        assert!(e.to_string().starts_with("workflow id 'my-wf'"), "{e}");
        let e = Workflow::builder("w")
            .jobs([j("a")])
            .schedule_interval("0 25 * * *")
            .build()
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("workflow 'w': invalid schedule_interval '0 25 * * *'"),
            "{e}"
        );
        let e = Workflow::builder("w").build().unwrap_err();
        assert!(matches!(e, DefinitionError::Empty { .. }));
        let e = Workflow::builder("w")
            .jobs([j("a")])
            .secrets(["my-secret"])
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("secret 'my-secret'"), "{e}");
    }

    #[test]
    fn same_job_object_may_appear_twice() {
        let a = j("a");
        let wf = Workflow::builder("w")
            .graph([(&a, vec![j("b")])])
            .graph([(&a, vec![j("c")])])
            .build()
            .unwrap();
        assert_eq!(order(&wf), ["a", "b", "c"]);
    }
}
