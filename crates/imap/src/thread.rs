//! RFC 5256 THREAD as a pure computation: messages (with what the store knows of their threading) in, a
//! forest of message numbers out, and its `* THREAD (1)(2 3)` rendering. REFERENCES groups by the stored
//! thread id, so IMAP's threads are exactly JMAP's Thread objects; within one, a message hangs under the
//! message it replies to, else under the thread's first, in date order.

use std::collections::HashMap;

/// A message THREAD considers: its number (UID or sequence number, as the command asked) and its facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub number: u32,
    pub thread_id: i64,
    pub message_id: String,
    /// In-Reply-To ids, then References ids.
    pub parents: Vec<String>,
    pub base_subject: String,
    pub date: i64,
}

/// A message and the messages that hang under it. Nothing here recurses over the tree (building,
/// rendering and dropping it are loops): a thread is as deep as its longest reply chain, which whoever
/// sends the mail decides, and a recursion that deep would overflow the stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub number: u32,
    pub children: Vec<Node>,
}

impl Drop for Node {
    fn drop(&mut self) {
        let mut pending = std::mem::take(&mut self.children);
        while let Some(mut node) = pending.pop() {
            pending.append(&mut node.children);
        }
    }
}

/// Messages in date order (number order between equal dates), as both algorithms read them.
fn by_date(mut messages: Vec<Message>) -> Vec<Message> {
    messages.sort_by_key(|m| (m.date, m.number));
    messages
}

/// Groups `messages` (in date order) by `key`, the groups in the order of their first message.
fn groups<K: std::hash::Hash + Eq>(messages: Vec<Message>, key: impl Fn(&Message) -> K) -> Vec<Vec<Message>> {
    let mut index: HashMap<K, usize> = HashMap::new();
    let mut groups: Vec<Vec<Message>> = Vec::new();
    for message in messages {
        let at = *index.entry(key(&message)).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[at].push(message);
    }
    groups
}

/// REFERENCES: one tree per stored thread. A message's parent is the latest earlier message of its thread
/// that its In-Reply-To or References name (its nearest ancestor); failing that, the thread's first.
pub fn references(messages: Vec<Message>) -> Vec<Node> {
    groups(by_date(messages), |m| m.thread_id).into_iter().map(tree).collect()
}

fn tree(thread: Vec<Message>) -> Node {
    // Only earlier messages can be parents, so the links never form a cycle.
    let mut placed: HashMap<&str, usize> = HashMap::new();
    let mut parent_of: Vec<usize> = vec![0; thread.len()];
    for (i, message) in thread.iter().enumerate() {
        if i > 0 {
            // The latest earlier message it names is its nearest ancestor, whatever order the ids were in.
            parent_of[i] = message.parents.iter().filter_map(|id| placed.get(id.as_str()).copied()).max().unwrap_or(0);
        }
        if !message.message_id.is_empty() {
            placed.entry(message.message_id.as_str()).or_insert(i);
        }
    }
    // A parent comes before its children, so building from the last message back finds each child
    // built; children keep date order.
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); thread.len()];
    for (i, &parent) in parent_of.iter().enumerate().skip(1) {
        children[parent].push(i);
    }
    let mut built: Vec<Option<Node>> = vec![None; thread.len()];
    for at in (0..thread.len()).rev() {
        let children = children[at].iter().filter_map(|&child| built[child].take()).collect();
        built[at] = Some(Node { number: thread[at].number, children });
    }
    built[0].take().expect("a thread has its first message")
}

/// ORDEREDSUBJECT (RFC 5256 §3): one thread per base subject, its first message the parent of the rest.
pub fn ordered_subject(messages: Vec<Message>) -> Vec<Node> {
    groups(by_date(messages), |m| m.base_subject.clone())
        .into_iter()
        .map(|group| Node {
            number: group[0].number,
            children: group[1..].iter().map(|m| Node { number: m.number, children: Vec::new() }).collect(),
        })
        .collect()
}

/// RFC 5256 §4's response: `* THREAD (2)(3 6 (4 23)(44 7 96))`.
pub fn render(threads: &[Node]) -> String {
    let mut out = String::from("* THREAD");
    if !threads.is_empty() {
        out.push(' ');
    }
    for thread in threads {
        out.push('(');
        chain(thread, &mut out);
        out.push(')');
    }
    out.push_str("\r\n");
    out
}

/// A node and what hangs under it: an only child follows its parent in the same list, several each get
/// a parenthesised list of their own.
fn chain(node: &Node, out: &mut String) {
    enum Step<'a> {
        Open,
        Node(&'a Node),
        Close,
    }
    let mut steps = vec![Step::Node(node)];
    while let Some(step) = steps.pop() {
        let node = match step {
            Step::Open => {
                out.push('(');
                continue;
            }
            Step::Close => {
                out.push(')');
                continue;
            }
            Step::Node(node) => node,
        };
        out.push_str(&node.number.to_string());
        match node.children.as_slice() {
            [] => {}
            [only] => {
                out.push(' ');
                steps.push(Step::Node(only));
            }
            many => {
                out.push(' ');
                // The first child's list opens now; each later one opens after the one before closes.
                for child in many.iter().rev() {
                    steps.push(Step::Close);
                    steps.push(Step::Node(child));
                    steps.push(Step::Open);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(number: u32, thread_id: i64, id: &str, parents: &[&str], subject: &str, date: i64) -> Message {
        Message {
            number,
            thread_id,
            message_id: id.into(),
            parents: parents.iter().map(|p| p.to_string()).collect(),
            base_subject: subject.into(),
            date,
        }
    }

    fn leaf(number: u32) -> Node {
        Node { number, children: Vec::new() }
    }

    #[test]
    fn rfc_5256_example_renders_as_written() {
        // §4: (3 6 (4 23)(44 7 96)).
        let branch = |n, c| Node { number: n, children: vec![c] };
        let tree = Node {
            number: 3,
            children: vec![Node { number: 6, children: vec![branch(4, leaf(23)), branch(44, branch(7, leaf(96)))] }],
        };
        assert_eq!(render(&[leaf(2), tree]), "* THREAD (2)(3 6 (4 23)(44 7 96))\r\n");
        assert_eq!(render(&[]), "* THREAD\r\n");
    }

    #[test]
    fn references_groups_by_stored_thread_and_nests_by_reply() {
        let messages = vec![
            message(1, 10, "a", &[], "plans", 100),
            message(2, 20, "x", &[], "lunch", 110),
            message(3, 10, "b", &["a"], "plans", 120),
            message(4, 10, "c", &["a"], "plans", 130),
            message(5, 10, "d", &["a", "b"], "plans", 140),
            // Joined the thread by subject, replies to nothing in it: under the first message.
            message(6, 10, "", &["gone"], "plans", 150),
        ];
        let threads = references(messages);
        assert_eq!(render(&threads), "* THREAD (1 (3 5)(4)(6))(2)\r\n");
    }

    #[test]
    fn references_orders_by_date_not_number_and_ignores_later_parents() {
        // Message 1 arrived later than 2 and claims 2 replies to it: only earlier messages are parents.
        let messages = vec![message(1, 7, "p", &["c"], "s", 200), message(2, 7, "c", &["p"], "s", 100)];
        assert_eq!(render(&references(messages)), "* THREAD (2 1)\r\n");
    }

    #[test]
    fn ordered_subject_makes_the_first_the_parent_of_the_rest() {
        let messages = vec![
            message(1, 1, "", &[], "b", 300),
            message(2, 2, "", &[], "a", 100),
            message(3, 3, "", &[], "a", 200),
            message(4, 4, "", &[], "a", 250),
            message(5, 5, "", &[], "c", 50),
        ];
        assert_eq!(render(&ordered_subject(messages)), "* THREAD (5)(2 (3)(4))(1)\r\n");
        let two = vec![message(1, 1, "", &[], "a", 1), message(2, 2, "", &[], "a", 2)];
        assert_eq!(render(&ordered_subject(two)), "* THREAD (1 2)\r\n");
    }

    /// Anyone can mail a reply chain thousands deep: building, rendering and dropping its thread must not
    /// overflow the stack (run here on a thread with a small one), and a fork deep down still renders.
    #[test]
    fn a_reply_chain_a_hundred_thousand_deep_is_threaded_without_recursion() {
        const DEPTH: u32 = 100_000;
        let rendered = std::thread::Builder::new()
            .stack_size(128 * 1024)
            .spawn(|| {
                let mut messages: Vec<Message> = (1..=DEPTH)
                    .map(|n| {
                        let parents = if n == 1 { Vec::new() } else { vec![format!("<{}>", n - 1)] };
                        Message { parents, ..message(n, 7, &format!("<{n}>"), &[], "s", i64::from(n)) }
                    })
                    .collect();
                // A second reply to the second-to-last message: a fork at the bottom.
                messages.push(message(
                    DEPTH + 1,
                    7,
                    "<fork>",
                    &[&format!("<{}>", DEPTH - 1)],
                    "s",
                    i64::from(DEPTH + 1),
                ));
                render(&references(messages))
            })
            .unwrap()
            .join()
            .expect("no stack overflow");
        let chain: Vec<String> = (1..DEPTH - 1).map(|n| n.to_string()).collect();
        let expected = format!("* THREAD ({} {} ({})({}))\r\n", chain.join(" "), DEPTH - 1, DEPTH, DEPTH + 1);
        assert_eq!(rendered, expected);
    }
}
