//! The scheduler behind `ember serve`: one thread owns the model and steps every running answer
//! together (continuous batching). Each answer has a slot — a KV cache of its own — and each
//! step is one forward pass over all slots' next tokens: a decode token for answers under way,
//! a chunk of prompt for answers starting. New requests take a free slot between steps; the rest
//! wait in a bounded queue. A slot keeps its tokens after its answer ends, so a request whose
//! prompt starts the same way (the next turn of a chat) evaluates only what is new.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedSender;

use super::metrics::{Finished, Metrics};
use crate::model::{LanguageModel, SeqChunk};
use crate::session::{Continuation, GenerateOptions, StopReason};
use crate::tokenizer::Tokenizer;

/// Prompt tokens one slot evaluates in a step while no other answer is decoding.
const PROMPT_CHUNK: usize = 256;
/// Prompt tokens per step while other answers are decoding: a long prompt joins without
/// stalling their tokens for long.
const PROMPT_CHUNK_SHARED: usize = 32;

/// One completion to generate.
pub struct Job {
    /// The whole prompt, tokenized.
    pub prompt: Vec<u32>,
    /// Sampling and limits (`max_tokens` already capped by the context).
    pub opts: GenerateOptions,
    /// Where the answer goes; when the receiver is dropped (the client left) the answer stops
    /// within a step and its slot is freed.
    pub events: UnboundedSender<Event>,
    /// When the request arrived (time to first token counts from here).
    pub received: Instant,
}

/// What an answer sends to its request.
#[derive(Debug)]
pub enum Event {
    /// Text that became final.
    Text(String),
    /// The answer ended.
    Done(Summary),
    /// The answer failed.
    Failed(String),
}

/// How an answer ended, and its counts and times.
#[derive(Clone, Debug)]
pub struct Summary {
    /// Why it ended.
    pub reason: StopReason,
    /// Prompt tokens.
    pub prompt_tokens: usize,
    /// Of those, tokens whose KV entries were reused from the slot's previous answer.
    pub cached_tokens: usize,
    /// Tokens generated (a stop token included).
    pub completion_tokens: usize,
    /// From arrival to the first generated token.
    pub first_token: Duration,
    /// Time spent evaluating the prompt (from taking a slot to the first token).
    pub prompt_time: Duration,
    /// Time from the first to the last generated token.
    pub decode_time: Duration,
}

/// Why a job was not accepted.
#[derive(Debug, PartialEq, Eq)]
pub enum Rejected {
    /// The queue is full.
    Busy,
    /// The engine has stopped (its model failed to load, or the server is shutting down).
    Stopped,
}

/// The request side of the engine: cheap to clone, shared by the HTTP handlers.
#[derive(Clone)]
pub struct EngineHandle {
    jobs: mpsc::Sender<Job>,
    waiting: Arc<AtomicUsize>,
    free: Arc<AtomicUsize>,
    queue_limit: usize,
}

impl EngineHandle {
    /// Queues `job`, unless `queue_limit` jobs are already waiting for a slot (beyond those the
    /// free slots are about to take: jobs count as waiting until the engine starts them).
    pub fn submit(&self, job: Job) -> Result<(), Rejected> {
        let waiting = self.waiting.fetch_add(1, Ordering::SeqCst);
        if waiting >= self.queue_limit + self.free.load(Ordering::SeqCst) {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(Rejected::Busy);
        }
        self.jobs.send(job).map_err(|_| {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            Rejected::Stopped
        })
    }
}

/// The receiving side, to hand to [`run`] on the engine's thread.
pub struct JobQueue {
    jobs: mpsc::Receiver<Job>,
    waiting: Arc<AtomicUsize>,
    free: Arc<AtomicUsize>,
}

/// A connected handle and queue; `queue_limit` jobs may wait for a slot.
pub fn channel(queue_limit: usize) -> (EngineHandle, JobQueue) {
    let (tx, rx) = mpsc::channel();
    let waiting = Arc::new(AtomicUsize::new(0));
    let free = Arc::new(AtomicUsize::new(0));
    (
        EngineHandle {
            jobs: tx,
            waiting: waiting.clone(),
            free: free.clone(),
            queue_limit,
        },
        JobQueue {
            jobs: rx,
            waiting,
            free,
        },
    )
}

/// An answer in progress.
struct Active<'t> {
    job: Job,
    answer: Continuation<&'t Tokenizer>,
    /// Prompt tokens in the slot's cache so far (evaluation resumes here).
    evaluated: usize,
    cached_tokens: usize,
    /// The token to evaluate next once the prompt is done.
    next: Option<u32>,
    started: Instant,
    first_token: Option<Instant>,
}

/// A KV-cache slot: the tokens its cache holds, and the answer using it.
#[derive(Default)]
struct Slot<'t> {
    tokens: Vec<u32>,
    active: Option<Active<'t>>,
    /// When its last answer ended (free slots are reused least recently used first).
    last_used: Option<Instant>,
}

/// Runs the engine until every [`EngineHandle`] is dropped: takes jobs from `queue`, batches
/// them on `model`'s slots and streams their answers.
pub fn run(
    model: &mut dyn LanguageModel,
    tokenizer: &Tokenizer,
    queue: JobQueue,
    metrics: &Metrics,
) {
    let ctx = model.context_len();
    let mut slots: Vec<Slot> = (0..model.slots()).map(|_| Slot::default()).collect();
    metrics.set_capacity(slots.len(), slots.len() * ctx);
    queue.free.store(slots.len(), Ordering::SeqCst);
    let mut pending: VecDeque<Job> = VecDeque::new();
    loop {
        // Take new jobs: wait for one only when nothing is running.
        let idle = slots.iter().all(|s| s.active.is_none()) && pending.is_empty();
        if idle {
            match queue.jobs.recv() {
                Ok(job) => pending.push_back(job),
                Err(_) => return,
            }
        }
        while let Ok(job) = queue.jobs.try_recv() {
            pending.push_back(job);
        }
        while let Some(i) = free_slot(&slots, pending.front()) {
            #[allow(
                clippy::expect_used,
                reason = "free_slot only finds a slot for a pending job"
            )]
            let job = pending.pop_front().expect("free_slot saw a job");
            queue.waiting.fetch_sub(1, Ordering::SeqCst);
            let resumable = |pos| model.resumable(i, pos);
            start(&mut slots[i], job, tokenizer, resumable);
        }
        // Answers whose client has gone free their slot now.
        for slot in &mut slots {
            if slot
                .active
                .as_ref()
                .is_some_and(|a| a.job.events.is_closed())
            {
                // The cache keeps what was evaluated: a retry of the same prompt reuses it.
                slot.active = None;
                slot.last_used = Some(Instant::now());
                metrics.cancelled();
            }
        }
        let finished = step(model, &mut slots, ctx, metrics);
        let used: usize = slots.iter().map(|s| s.tokens.len()).sum();
        let busy = slots.iter().filter(|s| s.active.is_some()).count();
        // Jobs count as waiting until they take a slot, in the channel or in `pending`.
        metrics.set_load(busy, queue.waiting.load(Ordering::SeqCst), used);
        queue.free.store(slots.len() - busy, Ordering::SeqCst);
        // Answers end after the metrics count them, so a client that has its answer reads
        // metrics that include it.
        for (events, summary) in finished {
            let _ = events.send(Event::Done(summary));
        }
    }
}

/// The free slot for `job`: the one whose cached tokens share the longest prefix with its
/// prompt, else the least recently used.
fn free_slot(slots: &[Slot], job: Option<&Job>) -> Option<usize> {
    let job = job?;
    slots
        .iter()
        .enumerate()
        .filter(|(_, s)| s.active.is_none())
        .max_by_key(|(_, s)| {
            let common = common_prefix(&s.tokens, &job.prompt);
            // Longest shared prefix first; among equals the least recently used (never used
            // sorts as oldest).
            (common, std::cmp::Reverse(s.last_used))
        })
        .map(|(i, _)| i)
}

fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Puts `job` into `slot`, keeping the cached prefix it shares (at least the prompt's last
/// token is evaluated again: its logits start the answer) where the model can continue from it
/// (`resumable`: [`LanguageModel::resumable`] of the slot).
fn start<'t>(
    slot: &mut Slot<'t>,
    job: Job,
    tokenizer: &'t Tokenizer,
    resumable: impl Fn(usize) -> usize,
) {
    let reuse = resumable(common_prefix(&slot.tokens, &job.prompt).min(job.prompt.len() - 1));
    slot.tokens.truncate(reuse);
    let answer = Continuation::new(tokenizer, &job.prompt, &job.opts);
    slot.active = Some(Active {
        job,
        answer,
        evaluated: reuse,
        cached_tokens: reuse,
        next: None,
        started: Instant::now(),
        first_token: None,
    });
}

/// One forward pass over every active slot, then a token for each whose prompt is done.
/// Returns the answers that ended, for the caller to deliver.
fn step(
    model: &mut dyn LanguageModel,
    slots: &mut [Slot],
    ctx: usize,
    metrics: &Metrics,
) -> Vec<(UnboundedSender<Event>, Summary)> {
    let mut finished = Vec::new();
    let decoding = slots
        .iter()
        .filter(|s| s.active.as_ref().is_some_and(|a| a.next.is_some()))
        .count();
    let budget = if decoding > 0 {
        PROMPT_CHUNK_SHARED
    } else {
        PROMPT_CHUNK
    };
    // (slot, tokens to evaluate, position of the first, whether its logits are sampled)
    let mut plan: Vec<(usize, Vec<u32>, usize, bool)> = Vec::new();
    for (i, slot) in slots.iter().enumerate() {
        let Some(a) = &slot.active else { continue };
        match a.next {
            Some(t) => plan.push((i, vec![t], slot.tokens.len(), true)),
            None => {
                let end = (a.evaluated + budget).min(a.job.prompt.len());
                let ids = a.job.prompt[a.evaluated..end].to_vec();
                plan.push((i, ids, a.evaluated, end == a.job.prompt.len()));
            }
        }
    }
    if plan.is_empty() {
        return finished;
    }
    let chunks: Vec<SeqChunk> = plan
        .iter()
        .map(|(slot, ids, pos0, _)| SeqChunk {
            slot: *slot,
            ids,
            pos0: *pos0,
        })
        .collect();
    let logits = match model.forward_batch(&chunks) {
        Ok(l) => l,
        Err(e) => {
            // Every answer in the failed pass ends with the error; their caches are unknown.
            for (i, ..) in &plan {
                let slot = &mut slots[*i];
                if let Some(a) = slot.active.take() {
                    let _ = a.job.events.send(Event::Failed(e.to_string()));
                }
                slot.tokens.clear();
                metrics.failed();
            }
            return finished;
        }
    };
    for ((i, ids, _, sample), mut logits) in plan.into_iter().zip(logits) {
        let slot = &mut slots[i];
        slot.tokens.extend_from_slice(&ids);
        let Some(a) = slot.active.as_mut() else {
            continue;
        };
        if a.next.is_none() {
            a.evaluated += ids.len();
        }
        if !sample {
            continue;
        }
        let now = Instant::now();
        let first = *a.first_token.get_or_insert(now);
        let s = match a.answer.step(&mut logits) {
            Ok(s) => s,
            Err(e) => {
                // A numeric fault ends this answer; the slot's cache is dropped with it.
                if let Some(a) = slot.active.take() {
                    let _ = a.job.events.send(Event::Failed(e.to_string()));
                }
                slot.tokens.clear();
                metrics.failed();
                continue;
            }
        };
        if !s.text.is_empty() {
            let _ = a.job.events.send(Event::Text(s.text));
        }
        let mut reason = s.done;
        if reason.is_none() && slot.tokens.len() >= ctx {
            let rest = a.answer.finish();
            if !rest.is_empty() {
                let _ = a.job.events.send(Event::Text(rest));
            }
            reason = Some(StopReason::ContextFull);
        }
        a.next = Some(s.token);
        let Some(reason) = reason else { continue };
        #[allow(
            clippy::expect_used,
            reason = "the slot's answer was borrowed just above"
        )]
        let a = slot.active.take().expect("active");
        let summary = Summary {
            reason,
            prompt_tokens: a.job.prompt.len(),
            cached_tokens: a.cached_tokens,
            completion_tokens: a.answer.ids().len(),
            first_token: first - a.job.received,
            prompt_time: first - a.started,
            decode_time: now - first,
        };
        metrics.finished(&Finished::from(&summary));
        finished.push((a.job.events, summary));
        slot.last_used = Some(now);
    }
    finished
}
