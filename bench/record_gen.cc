#include "bench/record_gen.h"

#include <cmath>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "bench/workload_util.h"

namespace coldheap::bench {
namespace {

// Roughly in order of frequency: draws favour the front (see Word()).
constexpr const char* kWords[] = {
    "the", "of", "and", "to", "a", "in", "is", "that", "for", "it", "as", "was",
    "with", "be", "by", "on", "not", "he", "this", "are", "or", "his", "from",
    "at", "which", "but", "have", "an", "had", "they", "you", "were", "their",
    "one", "all", "we", "can", "her", "has", "there", "been", "if", "more",
    "when", "will", "would", "who", "so", "no", "she", "other", "its", "may",
    "these", "what", "them", "than", "some", "him", "time", "into", "only",
    "do", "could", "new", "about", "two", "first", "then", "most", "also",
    "any", "like", "should", "made", "after", "people", "such", "over", "many",
    "years", "where", "must", "through", "back", "used", "before", "how",
    "work", "our", "between", "each", "well", "much", "world", "life", "own",
    "still", "because", "state", "while", "system", "against", "under",
    "water", "public", "school", "during", "great", "number", "always",
    "service", "program", "market", "family", "business", "without",
    "country", "something", "government", "another", "problem", "company",
    "general", "question", "morning", "evening", "different", "important",
    "development", "information", "community", "experience", "education",
    "although", "everything", "research", "nothing", "possible", "national",
    "political", "social", "economic", "history", "language",
    "product", "customer", "support", "account", "payment", "delivery",
    "weekend", "holiday", "project", "team", "engineer", "designer", "teacher",
    "student", "garden", "kitchen", "bicycle", "mountain", "river", "ocean",
    "forest", "village", "station", "library", "museum", "theatre", "concert",
    "festival", "photography", "cooking", "running", "climbing", "reading",
    "writing", "painting", "travelling", "coffee", "tea", "bread", "cheese",
    "chocolate", "music", "guitar", "piano", "violin", "jazz", "football",
    "tennis", "chess", "puzzle", "software", "hardware", "network", "database",
    "kernel", "compiler", "memory", "storage", "latency", "throughput",
    "release", "feature", "bug", "review", "meeting", "deadline", "budget",
    "report", "summary", "analysis", "strategy", "quality", "security",
    "privacy", "policy", "contract", "invoice", "order", "shipment", "return",
    "refund", "discount", "subscription", "newsletter", "message", "comment",
    "profile", "picture", "video", "podcast", "episode", "season", "chapter",
    "novel", "poem", "story", "article", "journal", "conference", "lecture",
    "seminar", "workshop", "course", "exam", "degree", "university", "college",
    "hospital", "doctor", "nurse", "patient", "medicine", "health", "fitness",
    "yoga", "swimming", "hiking", "camping", "sailing", "skiing", "weather",
    "sunshine", "rain", "snow", "winter", "summer", "spring", "autumn",
    "january", "february", "march", "april", "june", "july", "august",
    "september", "october", "november", "december", "monday", "tuesday",
    "wednesday", "thursday", "friday", "saturday", "sunday", "yesterday",
    "tomorrow", "recently", "usually", "sometimes", "often", "rarely", "never",
    "quickly", "slowly", "carefully", "happily", "honestly", "actually",
    "probably", "certainly", "perhaps", "really", "quite", "rather", "very",
    "enough", "almost", "already", "together", "alone", "abroad", "nearby",
    "beautiful", "difficult", "easy", "simple", "complex", "modern", "ancient",
    "local", "global", "small", "large", "early", "late", "young", "old",
    "happy", "curious", "friendly", "busy", "quiet", "noisy", "bright", "dark",
    "green", "blue", "red", "yellow", "purple", "orange", "silver", "golden",
    "loves", "enjoys", "prefers", "builds", "writes", "reads", "visits",
    "manages", "teaches", "studies", "collects", "repairs", "organises",
    "started", "finished", "joined", "moved", "learned", "travelled", "opened",
    "created", "shared", "helped", "believes", "thinks", "knows", "wants",
    "needs", "likes", "hates", "remembers", "forgets", "plans", "hopes",
};
constexpr size_t kNumWords = sizeof(kWords) / sizeof(kWords[0]);

constexpr const char* kFirst[] = {
    "maria", "james", "aiko", "olusegun", "fatima", "liam", "chen", "sofia",
    "mateo", "priya", "noah", "amara", "lucas", "ingrid", "yusuf", "elena",
    "kwame", "hana", "diego", "anya", "omar", "grace", "ravi", "lena",
    "tomas", "zainab", "felix", "mei", "arjun", "clara", "hugo", "nadia",
    "emil", "leila", "ivan", "rosa", "sven", "amina", "pablo", "yara",
};
constexpr const char* kLast[] = {
    "okafor", "smith", "tanaka", "garcia", "nguyen", "muller", "rossi",
    "kowalski", "haddad", "johansson", "silva", "kim", "patel", "dubois",
    "novak", "mensah", "ivanova", "fernandez", "jensen", "khan", "lopez",
    "schmidt", "wang", "costa", "osei", "petrov", "moreau", "larsen",
    "yamamoto", "alvarez", "brown", "celik", "nakamura", "hoffmann", "ali",
};
constexpr const char* kDomains[] = {"mailbox.example", "post.example.org",
                                    "inbox.example.net", "mail.example.com"};
constexpr const char* kCities[] = {
    "Lagos", "Lisbon", "Osaka", "Toronto", "Nairobi", "Krakow", "Lyon",
    "Bergen", "Pune", "Monterrey", "Accra", "Seville", "Tallinn", "Porto",
    "Busan", "Quito", "Tbilisi", "Ghent", "Dunedin", "Cork", "Izmir", "Leeds",
};
constexpr const char* kCountries[] = {"NG", "PT", "JP", "CA", "KE", "PL", "FR",
                                      "NO", "IN", "MX", "GH", "ES", "EE", "KR",
                                      "EC", "GE", "BE", "NZ", "IE", "TR", "GB"};
constexpr const char* kTags[] = {
    "premium", "beta-tester", "newsletter", "mobile", "desktop", "early-adopter",
    "vip", "churn-risk", "support-ticket", "referral", "student", "enterprise",
    "trial", "annual-plan", "monthly-plan", "dark-mode", "api-user", "admin",
};

constexpr const char* kStatuses[] = {"placed", "paid", "shipped", "delivered",
                                     "returned", "cancelled"};

template <size_t N>
const char* Pick(Rng& rng, const char* const (&list)[N]) {
  return list[rng.Below(N)];
}

// Skewed toward the front of kWords: index = n * u^3 (about Zipf-like).
const char* Word(Rng& rng) {
  double u = rng.Unit();
  return kWords[static_cast<size_t>(static_cast<double>(kNumWords) * u * u * u)];
}

void AppendHex(Rng& rng, size_t digits, std::string& out) {
  static constexpr char kHex[] = "0123456789abcdef";
  uint64_t bits = 0;
  for (size_t i = 0; i < digits; ++i) {
    if (i % 16 == 0) bits = rng.Next();
    out.push_back(kHex[bits & 15]);
    bits >>= 4;
  }
}

double Normal(Rng& rng) {
  double u1 = rng.Unit(), u2 = rng.Unit();
  return std::sqrt(-2.0 * std::log(u1 + 1e-300)) * std::cos(2 * M_PI * u2);
}

// Log-normal word count: median ~40 words, long tail, capped.
size_t BioWords(Rng& rng) {
  double w = std::exp(3.7 + 0.8 * Normal(rng));
  return w > 500 ? 500 : static_cast<size_t>(w);
}

// Log-normal order count: median ~4, capped.
size_t OrderCount(Rng& rng) {
  double n = std::exp(1.4 + 0.8 * Normal(rng));
  return n > 30 ? 30 : static_cast<size_t>(n);
}

void AppendBio(Rng& rng, size_t words, std::string& out) {
  bool sentence_start = true;
  for (size_t i = 0; i < words; ++i) {
    const char* w = Word(rng);
    if (i > 0) out.push_back(' ');
    size_t at = out.size();
    if (rng.Below(40) == 0) {
      char num[24];
      snprintf(num, sizeof(num), "%llu",
               static_cast<unsigned long long>(rng.Below(100000)));
      out += num;
    } else {
      out += w;
    }
    if (sentence_start) out[at] = static_cast<char>(toupper(out[at]));
    sentence_start = false;
    uint64_t r = rng.Below(100);
    if (r < 9) {
      out.push_back('.');
      sentence_start = true;
    } else if (r < 14 && i + 1 < words) {
      out.push_back(',');
    }
  }
  if (!sentence_start && words > 0) out.push_back('.');
}

void AppendEscaped(const std::string& s, std::string& out) {
  out.push_back('"');
  for (char c : s) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('"');
}

}  // namespace

Profile MakeProfile(uint64_t seed, uint64_t id, uint32_t version) {
  Rng rng(seed * 0x9e3779b97f4a7c15ull ^ (id << 20) ^ version);
  Profile p;
  p.id = id;
  p.version = version;
  AppendHex(rng, 8, p.uuid);
  p.uuid += '-';
  AppendHex(rng, 4, p.uuid);
  p.uuid += "-4";
  AppendHex(rng, 3, p.uuid);
  p.uuid += '-';
  AppendHex(rng, 4, p.uuid);
  p.uuid += '-';
  AppendHex(rng, 12, p.uuid);
  const char* first = Pick(rng, kFirst);
  const char* last = Pick(rng, kLast);
  p.name = first;
  p.name[0] = static_cast<char>(toupper(p.name[0]));
  p.name += ' ';
  p.name += last;
  p.name[p.name.size() - strlen(last)] =
      static_cast<char>(toupper(p.name[p.name.size() - strlen(last)]));
  char buf[96];
  snprintf(buf, sizeof(buf), "%s.%s%llu@%s", first, last,
           static_cast<unsigned long long>(rng.Below(1000)), Pick(rng, kDomains));
  p.email = buf;
  size_t city = rng.Below(sizeof(kCities) / sizeof(kCities[0]));
  p.city = kCities[city];
  p.country = kCountries[city % (sizeof(kCountries) / sizeof(kCountries[0]))];
  p.created_unix = 1'500'000'000 + static_cast<int64_t>(rng.Below(250'000'000));
  p.balance = static_cast<double>(rng.Below(10'000'000)) / 100.0 - 20'000.0;
  p.visits = static_cast<uint32_t>(rng.Below(5000));
  p.verified = rng.Below(3) != 0;
  for (uint64_t n = rng.Below(7); n > 0; --n) p.tags.push_back(Pick(rng, kTags));
  for (uint64_t n = rng.Below(9); n > 0; --n) p.scores.push_back(rng.Unit() * 100);
  for (size_t n = OrderCount(rng); n > 0; --n) {
    Order o;
    o.sku = "SKU-";
    AppendHex(rng, 6, o.sku);
    o.quantity = 1 + static_cast<uint32_t>(rng.Below(rng.Below(4) == 0 ? 12 : 3));
    o.price = static_cast<double>(99 + rng.Below(20000)) / 100.0;
    o.status = kStatuses[rng.Below(sizeof(kStatuses) / sizeof(kStatuses[0]))];
    o.placed_unix = p.created_unix + static_cast<int64_t>(rng.Below(40'000'000));
    p.orders.push_back(std::move(o));
  }
  AppendBio(rng, BioWords(rng), p.bio);
  AppendHex(rng, 32, p.session);
  return p;
}

void AppendJson(const Profile& p, std::string& out) {
  char buf[256];
  time_t created = static_cast<time_t>(p.created_unix);
  tm t;
  gmtime_r(&created, &t);
  char iso[32];
  strftime(iso, sizeof(iso), "%Y-%m-%dT%H:%M:%SZ", &t);
  snprintf(buf, sizeof(buf), "{\"id\":%llu,\"version\":%u,\"uuid\":\"%s\",",
           static_cast<unsigned long long>(p.id), p.version, p.uuid.c_str());
  out += buf;
  out += "\"name\":";
  AppendEscaped(p.name, out);
  out += ",\"email\":";
  AppendEscaped(p.email, out);
  snprintf(buf, sizeof(buf),
           ",\"address\":{\"city\":\"%s\",\"country\":\"%s\"},\"created\":\"%s\","
           "\"balance\":%.2f,\"visits\":%u,\"verified\":%s,\"tags\":[",
           p.city.c_str(), p.country.c_str(), iso, p.balance, p.visits,
           p.verified ? "true" : "false");
  out += buf;
  for (size_t i = 0; i < p.tags.size(); ++i) {
    if (i) out.push_back(',');
    AppendEscaped(p.tags[i], out);
  }
  out += "],\"scores\":[";
  for (size_t i = 0; i < p.scores.size(); ++i) {
    snprintf(buf, sizeof(buf), "%s%.6g", i ? "," : "", p.scores[i]);
    out += buf;
  }
  out += "],\"orders\":[";
  for (size_t i = 0; i < p.orders.size(); ++i) {
    const Order& o = p.orders[i];
    snprintf(buf, sizeof(buf),
             "%s{\"sku\":\"%s\",\"qty\":%u,\"price\":%.2f,\"status\":\"%s\","
             "\"placed\":%lld}",
             i ? "," : "", o.sku.c_str(), o.quantity, o.price, o.status,
             static_cast<long long>(o.placed_unix));
    out += buf;
  }
  out += "],\"bio\":";
  AppendEscaped(p.bio, out);
  out += ",\"session\":\"";
  out += p.session;
  out += "\"}";
}

std::string ProfileJson(uint64_t seed, uint64_t id, uint32_t version) {
  std::string out;
  AppendJson(MakeProfile(seed, id, version), out);
  return out;
}

}  // namespace coldheap::bench
