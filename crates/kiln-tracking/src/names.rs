//! Friendly generated run names (`adjective-animal-NNN`), as MLflow gives unnamed runs.

const ADJECTIVES: &[&str] = &[
    "able", "agile", "amber", "bold", "brave", "bright", "calm", "clever", "crisp", "daring", "eager", "fancy",
    "gentle", "glad", "grand", "happy", "honest", "jolly", "keen", "kind", "lively", "loyal", "lucky", "merry",
    "mighty", "nimble", "noble", "polite", "proud", "quick", "quiet", "rare", "royal", "sharp", "shy", "smooth",
    "steady", "sunny", "swift", "tidy", "vivid", "warm", "wise", "witty", "zesty",
];

const ANIMALS: &[&str] = &[
    "ant", "bass", "bat", "bear", "bee", "bird", "boar", "cat", "colt", "crab", "crane", "crow", "deer", "dove",
    "duck", "eel", "elk", "finch", "fish", "fox", "frog", "goat", "hare", "hawk", "hen", "horse", "lark", "lion",
    "lynx", "mole", "moth", "mouse", "newt", "owl", "ox", "panda", "pig", "robin", "seal", "shark", "sloth", "snail",
    "squid", "swan", "toad", "trout", "wasp", "whale", "wolf", "wren", "yak",
];

pub fn random_run_name() -> String {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    let a = ADJECTIVES[bytes[0] as usize % ADJECTIVES.len()];
    let b = ANIMALS[bytes[1] as usize % ANIMALS.len()];
    let n = u16::from_le_bytes([bytes[2], bytes[3]]) % 1000;
    format!("{a}-{b}-{n}")
}

/// A generated job name in Azure ML's style: `adjective_animal_` and ten random characters.
pub fn random_job_name() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let bytes = uuid::Uuid::new_v4().into_bytes();
    let a = ADJECTIVES[bytes[0] as usize % ADJECTIVES.len()];
    let b = ANIMALS[bytes[1] as usize % ANIMALS.len()];
    let tail: String = bytes[2..12].iter().map(|x| ALPHABET[*x as usize % ALPHABET.len()] as char).collect();
    format!("{a}_{b}_{tail}")
}
