// SQLite with an in-memory indexed table, queried on a hot range: the
// footprint runner's "sqlite" workload.
//
// It drives Debian's libsqlite3 (the library the sqlite3 shell runs on),
// opened with dlopen("libsqlite3.so.0") so that building it needs no -dev
// package, and times each statement itself (the shell's .timer has
// millisecond resolution and no percentiles).
//
// The table, in a ":memory:" database (every page lives in SQLite's page
// cache, allocated with malloc):
//   profiles(id INTEGER PRIMARY KEY, ts INTEGER, email TEXT, city TEXT,
//            balance REAL, visits INTEGER, doc TEXT)
//   indexes on ts and on email
// Rows arrive in time order (ts grows with id); doc is the JSON profile of
// bench/record_gen.h (~1.1 KB).
//
// Phases (PHASE lines, bench/workload_util.h):
//   load     inserts rows, 10000 per transaction, until the docs reach
//            --size_mb MiB; then builds the indexes.
//   settle   --settle_s seconds of the query mix, not counted.
//   measure  --measure_s seconds of it, counted.
// The query mix, all on the hot range, the most recent --hot_percent of the
// rows (the recent end of a time-ordered table):
//   point  (the rest)            SELECT doc, balance FROM profiles WHERE id=?
//   range  (--range_percent)     count/sum/max over ts BETWEEN ? AND ? (~50
//                                rows, through the ts index)
//   update (--update_percent)    UPDATE profiles SET visits=visits+1,
//                                balance=? WHERE id=?
// A point query must return the doc length inserted; a miss or a wrong
// length is counted and makes the exit status 1.
#include <dlfcn.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "bench/record_gen.h"
#include "bench/workload_util.h"

ABSL_FLAG(uint64_t, size_mb, 512, "MiB of record JSON to load");
ABSL_FLAG(uint64_t, seed, 1, "seed of the rows and the query mix");
ABSL_FLAG(uint64_t, hot_percent, 10, "percent of the rows ever queried");
ABSL_FLAG(uint64_t, range_percent, 10, "percent of queries that are ranges");
ABSL_FLAG(uint64_t, update_percent, 5, "percent of queries that are updates");
ABSL_FLAG(uint64_t, settle_s, 30, "seconds of queries before measuring");
ABSL_FLAG(uint64_t, measure_s, 60, "seconds of measured queries");

namespace coldheap::bench {
namespace {

struct sqlite3;
struct sqlite3_stmt;
constexpr int kSqliteOk = 0;
constexpr int kSqliteRow = 100;
constexpr int kSqliteDone = 101;
using Destructor = void (*)(void*);
const Destructor kTransient = reinterpret_cast<Destructor>(-1);

// The part of the SQLite C API used here, resolved at run time.
struct Sqlite {
  int (*open)(const char*, sqlite3**);
  int (*close)(sqlite3*);
  int (*exec)(sqlite3*, const char*, int (*)(void*, int, char**, char**), void*,
              char**);
  int (*prepare_v2)(sqlite3*, const char*, int, sqlite3_stmt**, const char**);
  int (*bind_int64)(sqlite3_stmt*, int, long long);
  int (*bind_double)(sqlite3_stmt*, int, double);
  int (*bind_text)(sqlite3_stmt*, int, const char*, int, Destructor);
  int (*step)(sqlite3_stmt*);
  int (*reset)(sqlite3_stmt*);
  int (*finalize)(sqlite3_stmt*);
  int (*column_bytes)(sqlite3_stmt*, int);
  const unsigned char* (*column_text)(sqlite3_stmt*, int);
  double (*column_double)(sqlite3_stmt*, int);
  long long (*column_int64)(sqlite3_stmt*, int);
  const char* (*errmsg)(sqlite3*);
};

template <typename F>
void Resolve(void* lib, const char* name, F& f) {
  f = reinterpret_cast<F>(dlsym(lib, name));
  if (f == nullptr) {
    fprintf(stderr, "sqlite_workload: %s not in libsqlite3: %s\n", name, dlerror());
    exit(3);
  }
}

Sqlite LoadSqlite() {
  void* lib = dlopen("libsqlite3.so.0", RTLD_NOW);
  if (lib == nullptr) {
    fprintf(stderr, "sqlite_workload: %s (install Debian's libsqlite3-0)\n", dlerror());
    exit(3);
  }
  Sqlite s;
  Resolve(lib, "sqlite3_open", s.open);
  Resolve(lib, "sqlite3_close", s.close);
  Resolve(lib, "sqlite3_exec", s.exec);
  Resolve(lib, "sqlite3_prepare_v2", s.prepare_v2);
  Resolve(lib, "sqlite3_bind_int64", s.bind_int64);
  Resolve(lib, "sqlite3_bind_double", s.bind_double);
  Resolve(lib, "sqlite3_bind_text", s.bind_text);
  Resolve(lib, "sqlite3_step", s.step);
  Resolve(lib, "sqlite3_reset", s.reset);
  Resolve(lib, "sqlite3_finalize", s.finalize);
  Resolve(lib, "sqlite3_column_bytes", s.column_bytes);
  Resolve(lib, "sqlite3_column_text", s.column_text);
  Resolve(lib, "sqlite3_column_double", s.column_double);
  Resolve(lib, "sqlite3_column_int64", s.column_int64);
  Resolve(lib, "sqlite3_errmsg", s.errmsg);
  return s;
}

class Db {
 public:
  explicit Db(const Sqlite& s) : s_(s) {
    if (s_.open(":memory:", &db_) != kSqliteOk) Fail("open");
  }
  ~Db() {
    for (sqlite3_stmt* st : stmts_) s_.finalize(st);
    s_.close(db_);
  }
  void Exec(const char* sql) {
    if (s_.exec(db_, sql, nullptr, nullptr, nullptr) != kSqliteOk) Fail(sql);
  }
  sqlite3_stmt* Prepare(const char* sql) {
    sqlite3_stmt* st = nullptr;
    if (s_.prepare_v2(db_, sql, -1, &st, nullptr) != kSqliteOk) Fail(sql);
    stmts_.push_back(st);
    return st;
  }
  // Steps to the end; returns the rows seen.
  int Drain(sqlite3_stmt* st) {
    int rows = 0, rc;
    while ((rc = s_.step(st)) == kSqliteRow) ++rows;
    if (rc != kSqliteDone) Fail("step");
    s_.reset(st);
    return rows;
  }
  [[noreturn]] void Fail(const char* what) {
    fprintf(stderr, "sqlite_workload: %s: %s\n", what, s_.errmsg(db_));
    exit(3);
  }
  const Sqlite& api() const { return s_; }

 private:
  const Sqlite& s_;
  sqlite3* db_ = nullptr;
  std::vector<sqlite3_stmt*> stmts_;
};

constexpr int64_t kTsStep = 10;  // ts grows ~10 per row, with jitter

int Main(int argc, char** argv) {
  ParseFlags(argc, argv, "an in-memory SQLite table under a query mix");
  uint64_t size_mb = absl::GetFlag(FLAGS_size_mb);
  uint64_t seed = absl::GetFlag(FLAGS_seed);
  uint64_t hot_percent = absl::GetFlag(FLAGS_hot_percent);
  uint64_t range_percent = absl::GetFlag(FLAGS_range_percent);
  uint64_t update_percent = absl::GetFlag(FLAGS_update_percent);
  uint64_t settle_s = absl::GetFlag(FLAGS_settle_s);
  uint64_t measure_s = absl::GetFlag(FLAGS_measure_s);
  if (size_mb == 0 || hot_percent == 0 || hot_percent > 100 ||
      range_percent + update_percent > 100) {
    fprintf(stderr, "sqlite_workload: a flag is out of range\n");
    return 2;
  }
  Sqlite api = LoadSqlite();
  uint64_t start = NowNs();
  PrintPhase("load");
  Db db(api);
  db.Exec(
      "CREATE TABLE profiles(id INTEGER PRIMARY KEY, ts INTEGER, email TEXT, "
      "city TEXT, balance REAL, visits INTEGER, doc TEXT)");
  sqlite3_stmt* insert = db.Prepare(
      "INSERT INTO profiles(id, ts, email, city, balance, visits, doc) "
      "VALUES (?, ?, ?, ?, ?, ?, ?)");
  std::vector<uint32_t> lengths;
  uint64_t loaded = 0;
  std::string doc;
  Rng rng(seed ^ 0x5417);
  while (loaded < (size_mb << 20)) {
    db.Exec("BEGIN");
    for (int i = 0; i < 10000 && loaded < (size_mb << 20); ++i) {
      uint64_t id = lengths.size();
      Profile p = MakeProfile(seed, id, 0);
      doc.clear();
      AppendJson(p, doc);
      loaded += doc.size();
      lengths.push_back(static_cast<uint32_t>(doc.size()));
      api.bind_int64(insert, 1, static_cast<long long>(id));
      api.bind_int64(insert, 2, static_cast<long long>(id) * kTsStep +
                                    static_cast<long long>(rng.Below(kTsStep)));
      api.bind_text(insert, 3, p.email.c_str(), -1, kTransient);
      api.bind_text(insert, 4, p.city.c_str(), -1, kTransient);
      api.bind_double(insert, 5, p.balance);
      api.bind_int64(insert, 6, p.visits);
      api.bind_text(insert, 7, doc.data(), static_cast<int>(doc.size()), kTransient);
      db.Drain(insert);
    }
    db.Exec("COMMIT");
  }
  db.Exec("CREATE INDEX profiles_ts ON profiles(ts)");
  db.Exec("CREATE INDEX profiles_email ON profiles(email)");
  uint64_t rows = lengths.size();
  printf("loaded %llu rows (%llu MiB of docs) in %.1f s\n",
         static_cast<unsigned long long>(rows), static_cast<unsigned long long>(size_mb),
         static_cast<double>(NowNs() - start) / 1e9);

  sqlite3_stmt* point = db.Prepare("SELECT doc, balance FROM profiles WHERE id = ?");
  sqlite3_stmt* range = db.Prepare(
      "SELECT count(*), sum(balance), max(visits) FROM profiles "
      "WHERE ts BETWEEN ? AND ?");
  sqlite3_stmt* update = db.Prepare(
      "UPDATE profiles SET visits = visits + 1, balance = ? WHERE id = ?");
  uint64_t hot_n = std::max<uint64_t>(1, rows * hot_percent / 100);
  uint64_t hot_first = rows - hot_n;
  uint64_t points = 0, ranges = 0, updates = 0, misses = 0, bad_length = 0;
  RunPhases(
      start, settle_s, measure_s,
      [&](bool counted, uint64_t) {
        uint64_t id = hot_first + rng.Below(hot_n);
        uint64_t kind = rng.Below(100);
        if (kind < range_percent) {
          long long from = static_cast<long long>(id) * kTsStep;
          api.bind_int64(range, 1, from);
          api.bind_int64(range, 2, from + 50 * kTsStep);
          db.Drain(range);
          if (counted) ++ranges;
        } else if (kind < range_percent + update_percent) {
          api.bind_double(update, 1, static_cast<double>(rng.Below(1'000'000)) / 100.0);
          api.bind_int64(update, 2, static_cast<long long>(id));
          db.Drain(update);
          if (counted) ++updates;
        } else {
          api.bind_int64(point, 1, static_cast<long long>(id));
          int rc = api.step(point);
          if (rc != kSqliteRow) {
            ++misses;
          } else if (static_cast<uint32_t>(api.column_bytes(point, 0)) != lengths[id]) {
            ++bad_length;
          }
          api.reset(point);
          if (counted) ++points;
        }
      },
      [&] {
        char extra[256];
        snprintf(extra, sizeof(extra),
                 ", \"points\": %llu, \"ranges\": %llu, \"updates\": %llu, "
                 "\"misses\": %llu, \"bad_length\": %llu, \"rows\": %llu",
                 static_cast<unsigned long long>(points),
                 static_cast<unsigned long long>(ranges),
                 static_cast<unsigned long long>(updates),
                 static_cast<unsigned long long>(misses),
                 static_cast<unsigned long long>(bad_length),
                 static_cast<unsigned long long>(rows));
        return std::string(extra);
      });
  return misses == 0 && bad_length == 0 ? 0 : 1;
}

}  // namespace
}  // namespace coldheap::bench

int main(int argc, char** argv) { return coldheap::bench::Main(argc, argv); }
