// A load generator for redis-server and memcached: loads realistic values
// (bench/record_gen.h: JSON profiles, ~1.1 KB each on average), then runs
// GETs on a hot set and reports throughput and latency percentiles.
//
// Why not the tools that ship with the servers: redis-benchmark's SET
// payload is constant 'x' bytes (and DEBUG POPULATE's "value:N" strings are
// tiny and alike), and memcaslap (libmemcached-tools' memaslap) fills values
// from one random alphanumeric block with a uniform key choice: neither is a
// realistic value nor a hot set, and constant values would flatter any
// compressing cache.
//
// Keys are "key:%012d" (key:000000000123), the names redis-benchmark's
// -r __rand_int__ produces, so the loaded data can also be read with
// `redis-benchmark -t get -r N`.
//
// Phases (PHASE lines, bench/workload_util.h):
//   load     SETs of records 0, 1, ... until their size reaches --size_mb
//            MiB, --pipeline requests in flight on one connection.
//   settle   --settle_s seconds of the request mix, not counted.
//   measure  --measure_s seconds of it, counted.
// The request mix: --conns connections, each with one request in flight
// (closed loop); keys are drawn uniformly from a hot set of --hot_percent of
// the keys, scattered over the key space (not the first loaded);
// --set_percent of requests write the record's next version, the rest are
// GETs. A GET must hit and return the length loaded (or last set); 1 in 1000
// is compared byte for byte with the record regenerated. (A GET of a key
// whose SET is in flight on another connection may see either version and
// is not checked.) Any miss or
// mismatch is counted, printed, and makes the exit status 1.
//
// Every loop is bounded: by size (load), by time (settle, measure), and a
// request that gets no answer for --timeout_s seconds ends the run.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "bench/record_gen.h"
#include "bench/workload_util.h"

ABSL_FLAG(std::string, proto, "redis", "redis or memcache");
ABSL_FLAG(uint64_t, port, 6379, "TCP port of the server on 127.0.0.1");
ABSL_FLAG(uint64_t, size_mb, 1024, "MiB of record JSON to load");
ABSL_FLAG(uint64_t, seed, 1, "seed of the records and the request mix");
ABSL_FLAG(uint64_t, hot_percent, 10, "percent of the keys ever requested");
ABSL_FLAG(uint64_t, set_percent, 0, "percent of requests that are SETs");
ABSL_FLAG(uint64_t, settle_s, 30, "seconds of requests before measuring");
ABSL_FLAG(uint64_t, measure_s, 60, "seconds of measured requests");
ABSL_FLAG(uint64_t, conns, 8, "connections, 1..1024");
ABSL_FLAG(uint64_t, pipeline, 64, "requests in flight per connection");
ABSL_FLAG(uint64_t, timeout_s, 30, "seconds without a reply before failing");

namespace coldheap::bench {
namespace {

enum class Proto { kRedis, kMemcache };

[[noreturn]] void Die(const char* what) {
  fprintf(stderr, "kv_client: %s: %s\n", what, errno ? strerror(errno) : "failed");
  exit(3);
}

std::string Key(uint64_t id) {
  char buf[32];
  snprintf(buf, sizeof(buf), "key:%012llu", static_cast<unsigned long long>(id));
  return buf;
}

void AppendSet(Proto proto, const std::string& key, const std::string& value,
               std::string& out) {
  char head[96];
  if (proto == Proto::kRedis) {
    snprintf(head, sizeof(head), "*3\r\n$3\r\nSET\r\n$%zu\r\n", key.size());
    out += head;
    out += key;
    snprintf(head, sizeof(head), "\r\n$%zu\r\n", value.size());
    out += head;
  } else {
    snprintf(head, sizeof(head), "set %s 0 0 %zu\r\n", key.c_str(), value.size());
    out += head;
  }
  out += value;
  out += "\r\n";
}

void AppendGet(Proto proto, const std::string& key, std::string& out) {
  char head[64];
  if (proto == Proto::kRedis) {
    snprintf(head, sizeof(head), "*2\r\n$3\r\nGET\r\n$%zu\r\n", key.size());
    out += head;
    out += key;
    out += "\r\n";
  } else {
    out += "get ";
    out += key;
    out += "\r\n";
  }
}

// One reply parsed off the front of a buffer.
struct Reply {
  enum Kind { kIncomplete, kStored, kValue, kMiss, kError } kind = kIncomplete;
  size_t consumed = 0;
  size_t value_offset = 0, value_size = 0;
};

Reply ParseReply(Proto proto, const std::string& in, size_t from) {
  Reply r;
  size_t eol = in.find("\r\n", from);
  if (eol == std::string::npos) return r;
  const char* line = in.data() + from;
  size_t line_len = eol - from;
  if (proto == Proto::kRedis) {
    if (line[0] == '+') return {Reply::kStored, eol + 2 - from};
    if (line[0] == '-') return {Reply::kError, eol + 2 - from};
    if (line[0] != '$') return {Reply::kError, eol + 2 - from};
    long len = strtol(line + 1, nullptr, 10);
    if (len < 0) return {Reply::kMiss, eol + 2 - from};
    size_t end = eol + 2 + static_cast<size_t>(len) + 2;
    if (in.size() < end) return r;
    return {Reply::kValue, end - from, eol + 2, static_cast<size_t>(len)};
  }
  if (line_len == 6 && memcmp(line, "STORED", 6) == 0) {
    return {Reply::kStored, eol + 2 - from};
  }
  if (line_len == 3 && memcmp(line, "END", 3) == 0) {
    return {Reply::kMiss, eol + 2 - from};
  }
  if (line_len > 6 && memcmp(line, "VALUE ", 6) == 0) {
    // VALUE <key> <flags> <bytes>
    size_t last_space = in.rfind(' ', eol);
    size_t len = strtoull(in.c_str() + last_space + 1, nullptr, 10);
    size_t end = eol + 2 + len + 2 + 5;  // data, \r\n, END\r\n
    if (in.size() < end) return r;
    return {Reply::kValue, end - from, eol + 2, len};
  }
  return {Reply::kError, eol + 2 - from};
}

int Connect(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) Die("socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    Die("connect to 127.0.0.1");
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  return fd;
}

void SendAll(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) Die("send");
    done += static_cast<size_t>(n);
  }
}

// Loads records until `bytes` of values are stored; returns each value's
// length, indexed by record id.
std::vector<uint32_t> Load(Proto proto, uint16_t port, uint64_t seed, uint64_t bytes,
                           size_t pipeline) {
  int fd = Connect(port);
  std::vector<uint32_t> lengths;
  uint64_t loaded = 0;
  std::string out, in;
  char buf[1 << 16];
  while (loaded < bytes) {
    out.clear();
    size_t batch = 0;
    for (; batch < pipeline && loaded < bytes; ++batch) {
      uint64_t id = lengths.size();
      std::string value = ProfileJson(seed, id, 0);
      loaded += value.size();
      lengths.push_back(static_cast<uint32_t>(value.size()));
      AppendSet(proto, Key(id), value, out);
    }
    SendAll(fd, out);
    size_t replies = 0, pos = 0;
    in.clear();
    while (replies < batch) {
      Reply r = ParseReply(proto, in, pos);
      if (r.kind == Reply::kIncomplete) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) Die("recv during load");
        in.append(buf, static_cast<size_t>(n));
        continue;
      }
      if (r.kind != Reply::kStored) {
        fprintf(stderr, "kv_client: SET failed: %.80s\n", in.c_str() + pos);
        exit(3);
      }
      pos += r.consumed;
      ++replies;
    }
  }
  close(fd);
  return lengths;
}

struct Conn {
  int fd = -1;
  std::string in, out;
  uint64_t id = 0;
  bool is_set = false;
  // A GET that may race with a SET of the same key on another connection:
  // either value is right, so it is not checked.
  bool racy = false;
  uint64_t sent_ns = 0;
};

struct RunStats {
  uint64_t ops = 0, gets = 0, sets = 0, misses = 0, bad_length = 0,
           compared = 0, mismatches = 0, errors = 0, racy = 0;
  LatencyHistogram hist;
};

class Runner {
 public:
  Runner(Proto proto, uint16_t port, uint64_t seed, std::vector<uint32_t> lengths,
         uint64_t hot_percent, uint64_t set_percent, size_t conns, uint64_t timeout_s)
      : proto_(proto),
        seed_(seed),
        lengths_(std::move(lengths)),
        versions_(lengths_.size(), 0),
        sets_in_flight_(lengths_.size(), 0),
        hot_n_(std::max<uint64_t>(1, lengths_.size() * hot_percent / 100)),
        scatter_(lengths_.size()),
        set_percent_(set_percent),
        timeout_ns_(timeout_s * 1'000'000'000ull),
        rng_(seed ^ 0xc11e),
        conns_(conns) {
    epfd_ = epoll_create1(EPOLL_CLOEXEC);
    if (epfd_ < 0) Die("epoll_create1");
    for (size_t i = 0; i < conns_.size(); ++i) {
      Conn& c = conns_[i];
      c.fd = Connect(port);
      fcntl(c.fd, F_SETFL, fcntl(c.fd, F_GETFL) | O_NONBLOCK);
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u64 = i;
      if (epoll_ctl(epfd_, EPOLL_CTL_ADD, c.fd, &ev) != 0) Die("epoll_ctl");
    }
  }

  uint64_t hot_keys() const { return hot_n_; }

  // Runs the mix for `seconds`; counts into `stats` if given.
  void Run(uint64_t seconds, RunStats* stats, Ticker& ticker, uint64_t& ops_total) {
    uint64_t start = NowNs();
    uint64_t end = start + seconds * 1'000'000'000ull;
    for (Conn& c : conns_) Issue(c, start);
    epoll_event events[64];
    uint64_t now = start;
    while (now < end) {
      int n = epoll_wait(epfd_, events, 64, 100);
      if (n < 0 && errno != EINTR) Die("epoll_wait");
      now = NowNs();
      for (int i = 0; i < n; ++i) {
        Conn& c = conns_[events[i].data.u64];
        if (!Receive(c)) continue;
        Reply r = ParseReply(proto_, c.in, 0);
        if (r.kind == Reply::kIncomplete) continue;
        now = NowNs();
        Complete(c, r, now, stats);
        c.in.erase(0, r.consumed);
        ++ops_total;
        if (now < end) Issue(c, now);
      }
      ticker.Maybe(now, ops_total);
      for (const Conn& c : conns_) {
        if (c.sent_ns != 0 && now - c.sent_ns > timeout_ns_) {
          fprintf(stderr, "kv_client: no reply in %llu s\n",
                  static_cast<unsigned long long>(timeout_ns_ / 1'000'000'000ull));
          exit(3);
        }
      }
    }
    Drain(stats);
  }

 private:
  void Issue(Conn& c, uint64_t now) {
    c.id = scatter_(rng_.Below(hot_n_));
    c.is_set = rng_.Below(100) < set_percent_;
    // Two SETs of one key in flight could land in either order: never.
    if (sets_in_flight_[c.id] > 0) c.is_set = false;
    c.out.clear();
    if (c.is_set) {
      std::string value = ProfileJson(seed_, c.id, versions_[c.id] + 1);
      AppendSet(proto_, Key(c.id), value, c.out);
      ++versions_[c.id];
      lengths_[c.id] = static_cast<uint32_t>(value.size());
      ++sets_in_flight_[c.id];
      for (Conn& other : conns_) {
        if (!other.is_set && other.sent_ns != 0 && other.id == c.id) other.racy = true;
      }
    } else {
      AppendGet(proto_, Key(c.id), c.out);
      c.racy = sets_in_flight_[c.id] > 0;
    }
    c.sent_ns = now;
    SendAll(c.fd, c.out);  // small: fits the socket buffer
  }

  bool Receive(Conn& c) {
    char buf[1 << 16];
    for (;;) {
      ssize_t n = recv(c.fd, buf, sizeof(buf), 0);
      if (n > 0) {
        c.in.append(buf, static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
      Die("connection closed by the server");
    }
  }

  void Complete(Conn& c, const Reply& r, uint64_t now, RunStats* stats) {
    uint64_t sent = c.sent_ns;
    c.sent_ns = 0;
    if (c.is_set) --sets_in_flight_[c.id];
    if (stats == nullptr) return;
    ++stats->ops;
    stats->hist.Record(now - sent);
    if (c.is_set) {
      ++stats->sets;
      if (r.kind != Reply::kStored) ++stats->errors;
      return;
    }
    ++stats->gets;
    if (c.racy) {
      ++stats->racy;
    } else if (r.kind == Reply::kMiss) {
      ++stats->misses;
    } else if (r.kind != Reply::kValue) {
      ++stats->errors;
    } else if (r.value_size != lengths_[c.id]) {
      ++stats->bad_length;
    } else if (stats->gets % 1000 == 0) {
      ++stats->compared;
      std::string expect = ProfileJson(seed_, c.id, versions_[c.id]);
      if (c.in.compare(r.value_offset, r.value_size, expect) != 0) ++stats->mismatches;
    }
  }

  // Waits for the requests still in flight (uncounted), so the next phase
  // starts with idle connections.
  void Drain(RunStats* stats) {
    (void)stats;
    uint64_t deadline = NowNs() + timeout_ns_;
    for (Conn& c : conns_) {
      while (c.sent_ns != 0) {
        if (NowNs() > deadline) {
          fprintf(stderr, "kv_client: no reply while draining\n");
          exit(3);
        }
        Receive(c);
        Reply r = ParseReply(proto_, c.in, 0);
        if (r.kind == Reply::kIncomplete) {
          usleep(100);
          continue;
        }
        c.in.erase(0, r.consumed);
        c.sent_ns = 0;
        if (c.is_set) --sets_in_flight_[c.id];
      }
    }
  }

  Proto proto_;
  uint64_t seed_;
  std::vector<uint32_t> lengths_;
  std::vector<uint32_t> versions_;
  std::vector<uint8_t> sets_in_flight_;
  uint64_t hot_n_;
  Scatter scatter_;
  uint64_t set_percent_;
  uint64_t timeout_ns_;
  Rng rng_;
  std::vector<Conn> conns_;
  int epfd_ = -1;
};

int Main(int argc, char** argv) {
  ParseFlags(argc, argv, "load generator for redis and memcached");
  std::string proto_name = absl::GetFlag(FLAGS_proto);
  uint64_t port = absl::GetFlag(FLAGS_port);
  uint64_t size_mb = absl::GetFlag(FLAGS_size_mb);
  uint64_t seed = absl::GetFlag(FLAGS_seed);
  uint64_t hot_percent = absl::GetFlag(FLAGS_hot_percent);
  uint64_t set_percent = absl::GetFlag(FLAGS_set_percent);
  uint64_t settle_s = absl::GetFlag(FLAGS_settle_s);
  uint64_t measure_s = absl::GetFlag(FLAGS_measure_s);
  uint64_t conns = absl::GetFlag(FLAGS_conns);
  uint64_t pipeline = absl::GetFlag(FLAGS_pipeline);
  uint64_t timeout_s = absl::GetFlag(FLAGS_timeout_s);
  Proto proto;
  if (proto_name == "redis") {
    proto = Proto::kRedis;
  } else if (proto_name == "memcache") {
    proto = Proto::kMemcache;
  } else {
    fprintf(stderr, "kv_client: --proto must be redis or memcache\n");
    return 2;
  }
  if (port == 0 || port > 65535 || size_mb == 0 || hot_percent == 0 ||
      hot_percent > 100 || set_percent > 100 || conns == 0 || conns > 1024 ||
      pipeline == 0 || timeout_s == 0) {
    fprintf(stderr, "kv_client: a flag is out of range\n");
    return 2;
  }

  uint64_t start = NowNs();
  PrintPhase("load");
  std::vector<uint32_t> lengths =
      Load(proto, static_cast<uint16_t>(port), seed, size_mb << 20, pipeline);
  uint64_t keys = lengths.size();
  printf("loaded %llu keys (%llu MiB of values) in %.1f s\n",
         static_cast<unsigned long long>(keys), static_cast<unsigned long long>(size_mb),
         static_cast<double>(NowNs() - start) / 1e9);
  fflush(stdout);

  Runner runner(proto, static_cast<uint16_t>(port), seed, std::move(lengths), hot_percent,
                set_percent, conns, timeout_s);
  Ticker ticker(start);
  uint64_t ops_total = 0;
  PrintPhase("settle");
  runner.Run(settle_s, nullptr, ticker, ops_total);
  PrintPhase("measure");
  RunStats stats;
  uint64_t t0 = NowNs();
  runner.Run(measure_s, &stats, ticker, ops_total);
  double seconds = static_cast<double>(NowNs() - t0) / 1e9;
  PrintPhase("done");
  char extra[512];
  snprintf(extra, sizeof(extra),
           ", \"gets\": %llu, \"sets\": %llu, \"misses\": %llu, \"bad_length\": %llu, "
           "\"compared\": %llu, \"mismatches\": %llu, \"errors\": %llu, \"keys\": %llu, "
           "\"hot_keys\": %llu, \"conns\": %llu, \"unchecked_racy_gets\": %llu",
           static_cast<unsigned long long>(stats.gets),
           static_cast<unsigned long long>(stats.sets),
           static_cast<unsigned long long>(stats.misses),
           static_cast<unsigned long long>(stats.bad_length),
           static_cast<unsigned long long>(stats.compared),
           static_cast<unsigned long long>(stats.mismatches),
           static_cast<unsigned long long>(stats.errors),
           static_cast<unsigned long long>(keys),
           static_cast<unsigned long long>(runner.hot_keys()),
           static_cast<unsigned long long>(conns),
           static_cast<unsigned long long>(stats.racy));
  PrintResult(stats.ops, seconds, stats.hist, extra);
  bool ok = stats.misses == 0 && stats.bad_length == 0 && stats.mismatches == 0 &&
            stats.errors == 0;
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace coldheap::bench

int main(int argc, char** argv) { return coldheap::bench::Main(argc, argv); }
