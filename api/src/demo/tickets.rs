//! Generated support tickets for the demo's text model (and the tests): a
//! seeded generator of short labelled texts, so no third-party text ships
//! with the project. Two vocabularies: the words the first data set uses,
//! and newer words users start writing later, which a model trained on the
//! first set has never seen.

/// Which words a ticket's category shows through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vocabulary {
    /// The words of the first data set.
    Known,
    /// Words that appear only later (a new product's terms).
    New,
}

/// One generated ticket.
#[derive(Debug, Clone, PartialEq)]
pub struct Ticket {
    pub text: String,
    /// `billing`, `outage` or `account`.
    pub category: &'static str,
}

const CATEGORIES: [&str; 3] = ["billing", "outage", "account"];

fn words(category: &str, vocabulary: Vocabulary) -> [&'static str; 6] {
    match (category, vocabulary) {
        ("billing", Vocabulary::Known) => ["invoice", "charge", "refund", "payment", "card", "price"],
        ("billing", Vocabulary::New) => ["subscription", "renewal", "vat", "receipt", "plan", "coupon"],
        ("outage", Vocabulary::Known) => ["down", "error", "timeout", "crash", "unavailable", "slow"],
        ("outage", Vocabulary::New) => ["502", "latency", "degraded", "unreachable", "incident", "hanging"],
        (_, Vocabulary::Known) => ["password", "login", "email", "username", "reset", "locked"],
        (_, Vocabulary::New) => ["2fa", "sso", "passkey", "verification", "profile", "deactivated"],
    }
}

/// Words any category's tickets use.
const FILLER: [&str; 10] = [
    "please", "help", "today", "again", "since", "monday", "urgent", "thanks", "my", "the",
];

/// A small deterministic generator (splitmix64): the same seed gives the
/// same numbers on every machine. The tests generate their data with it too.
#[derive(Debug, Clone)]
pub struct Seeded(u64);

impl Seeded {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[(self.next() % from.len() as u64) as usize]
    }
}

/// Generated tickets, from a seed.
#[derive(Debug, Clone)]
pub struct Tickets(Seeded);

impl Tickets {
    pub fn new(seed: u64) -> Self {
        Self(Seeded::new(seed))
    }

    /// The next ticket: two words of its category among filler, and a
    /// ticket number.
    pub fn ticket(&mut self, vocabulary: Vocabulary) -> Ticket {
        let rng = &mut self.0;
        let category = rng.pick(&CATEGORIES);
        let own = words(category, vocabulary);
        let text = format!(
            "{} {} {} {} {} ticket {}",
            rng.pick(&FILLER),
            rng.pick(&own),
            rng.pick(&FILLER),
            rng.pick(&own),
            rng.pick(&FILLER),
            rng.next() % 100_000
        );
        Ticket { text, category }
    }

    /// `n` tickets as JSON lines with the fields `body` and `category`.
    pub fn json_lines(&mut self, n: usize, vocabulary: Vocabulary) -> String {
        (0..n)
            .map(|_| {
                let ticket = self.ticket(vocabulary);
                serde_json::json!({"body": ticket.text, "category": ticket.category}).to_string() + "\n"
            })
            .collect()
    }
}
