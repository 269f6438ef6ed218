//! Realistic benchmark data for `bench-tool generate-shop`: a shop's
//! `customers`, `orders` and `events`, with names, addresses, emails, product
//! names and free text drawn from a synthetic vocabulary of a few thousand
//! words under a Zipf-like law (as words are in real text), plus the random
//! parts real records have (tracking numbers, session ids, IP addresses,
//! prices). Not repeated filler: it gzips (-6) to about a third, as the
//! application dumps the issue was measured on.

use mongodb::bson::{doc, Bson, DateTime, Document};

/// xorshift64*: deterministic, fast, no dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// Zipf-like index in 0..n: small indexes far more often.
    fn zipf(&mut self, n: usize) -> usize {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        (((n as f64 + 1.0).powf(u) - 1.0) as usize).min(n - 1)
    }
    fn pick<'a>(&mut self, list: &[&'a str]) -> &'a str {
        list[self.below(list.len() as u64) as usize]
    }
}

const SYLLABLES: &[&str] = &[
    "ka", "lo", "mi", "ren", "sa", "to", "vi", "ne", "da", "shi", "qu", "an", "er", "ing", "tion", "ex", "pro", "con",
    "al", "is", "or", "un", "de", "li", "ma", "ter", "ol", "ar", "hu", "zhe", "xi", "bo", "po", "fu", "gra", "ble",
];
const FIRST: &[&str] = &[
    "Wei", "Fang", "Li", "Min", "Jun", "Lei", "Yan", "Hui", "Tao", "Ling", "Anna", "James", "Maria", "David", "Sofia",
    "Chen", "Ming", "Xin", "Hao", "Jie", "Peter", "Laura", "Omar", "Aiko", "Ravi", "Elena", "Tom", "Nina", "Yusuf",
];
const LAST: &[&str] = &[
    "Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Huang", "Zhao", "Wu", "Zhou", "Smith", "Garcia", "Muller", "Rossi",
    "Tanaka", "Kim", "Nguyen", "Singh", "Ivanova", "Silva", "Xu", "Sun", "Ma", "Zhu", "Hu", "Guo", "He", "Lin",
];
const CITIES: &[&str] = &[
    "Hangzhou",
    "Shanghai",
    "Beijing",
    "Shenzhen",
    "Guangzhou",
    "Chengdu",
    "Wuhan",
    "Nanjing",
    "Xi'an",
    "Suzhou",
    "Tianjin",
    "Chongqing",
    "Qingdao",
    "Xiamen",
    "Kunming",
    "Dalian",
    "Singapore",
    "Jakarta",
    "Frankfurt",
    "Tokyo",
];
const STATUS: &[&str] = &["pending", "paid", "shipped", "delivered", "cancelled", "refunded", "returned"];
const EVENTS: &[&str] = &["view", "search", "add_to_cart", "checkout", "login", "logout", "review", "share", "click"];
const AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15",
    "AliApp(TB/10.30.0) WindVane/8.5.0 1170x2532",
];

/// The generator: a vocabulary and a random stream.
pub struct Shop {
    rng: Rng,
    words: Vec<String>,
}

impl Shop {
    pub fn new(seed: u64) -> Shop {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let words =
            (0..20_000).map(|_| (0..1 + rng.below(4)).map(|_| rng.pick(SYLLABLES)).collect::<String>()).collect();
        Shop { rng, words }
    }

    fn text(&mut self, words: u64) -> String {
        let n = self.rng.below(words) + 1;
        let mut s = String::new();
        for i in 0..n {
            if i > 0 {
                s.push(if self.rng.below(12) == 0 { '.' } else { ' ' });
                if s.ends_with('.') {
                    s.push(' ');
                }
            }
            let w = self.rng.zipf(self.words.len());
            s.push_str(&self.words[w]);
        }
        s
    }

    fn alnum(&mut self, len: usize) -> String {
        const CHARS: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ0123456789";
        (0..len).map(|_| CHARS[self.rng.below(CHARS.len() as u64) as usize] as char).collect()
    }

    fn date(&mut self) -> DateTime {
        DateTime::from_millis(1_700_000_000_000 + self.rng.below(40_000_000_000) as i64)
    }

    fn address(&mut self) -> Document {
        doc! {
            "street": format!("{} {} Road", self.rng.below(2000) + 1, self.text(2)),
            "city": self.rng.pick(CITIES),
            "zip": format!("{:06}", self.rng.below(1_000_000)),
            "phone": format!("+86 1{:02} {:04} {:04}", self.rng.below(100), self.rng.below(10_000), self.rng.below(10_000)),
        }
    }

    pub fn customer(&mut self, id: i64) -> Document {
        let (first, last) = (self.rng.pick(FIRST), self.rng.pick(LAST));
        doc! {
            "_id": id,
            "name": format!("{first} {last}"),
            "email": format!("{}.{}{}@{}.com", first.to_lowercase(), last.to_lowercase(), self.rng.below(1000), self.text(1)),
            "address": self.address(),
            "password": format!("$2b$12${}{}", self.alnum(26), self.alnum(27).to_lowercase()),
            "tier": (["bronze", "silver", "gold", "platinum"][self.rng.zipf(4)]),
            "created": self.date(),
            "tags": (0..self.rng.below(4)).map(|_| Bson::String(self.text(1))).collect::<Vec<_>>(),
            "bio": self.text(60),
        }
    }

    pub fn order(&mut self, id: i64) -> Document {
        let items: Vec<Bson> = (0..1 + self.rng.below(5))
            .map(|_| {
                let sku = self.rng.zipf(50_000);
                Bson::Document(doc! {
                    "sku": format!("SKU-{sku:06}"),
                    "name": self.text(4),
                    "qty": (1 + self.rng.zipf(9)) as i32,
                    "serial": self.alnum(12),
                    "price": (self.rng.below(100_000) as f64) / 100.0,
                })
            })
            .collect();
        doc! {
            "_id": id,
            "customer": self.rng.below(1_000_000) as i64,
            "status": STATUS[self.rng.zipf(STATUS.len())],
            "created": self.date(),
            "items": items,
            "total": (self.rng.below(1_000_000) as f64) / 100.0,
            "shipping": {"address": self.address(), "carrier": (["SF", "YTO", "ZTO", "EMS", "JD"][self.rng.zipf(5)]),
                         "tracking": self.alnum(14)},
            "payment": {"method": (["alipay", "wechat", "card", "cod"][self.rng.zipf(4)]),
                        "txn": format!("{:016x}", self.rng.next())},
            "coupon": format!("{}-{}", self.alnum(4), self.alnum(6)),
            "note": self.text(30),
        }
    }

    pub fn event(&mut self, id: i64) -> Document {
        doc! {
            "_id": id,
            "ts": self.date(),
            "type": EVENTS[self.rng.zipf(EVENTS.len())],
            "user": self.rng.below(1_000_000) as i64,
            "session": format!("{:016x}", self.rng.next()),
            "request": format!("{:016x}{:016x}", self.rng.next(), self.rng.next()),
            "ip": format!("{}.{}.{}.{}", 1 + self.rng.below(223), self.rng.below(256), self.rng.below(256), self.rng.below(256)),
            "agent": self.rng.pick(AGENTS),
            "path": format!("/p/{}/{}", self.rng.zipf(50_000), self.text(2).replace(['.', ' '], "-")),
            "query": self.text(5),
            "ms": self.rng.zipf(5000) as i32,
        }
    }
}
