-- wrk script: every request is a new signed GitHub push delivery to BENCH_BRANCH of
-- BENCH_REPO — its own body and X-GitHub-Delivery, signed with BENCH_SECRET — so the hub accepts
-- each one (202) and claims its replay keys, as a stream of real pushes would. The HMAC-SHA256
-- is libcrypto's, through LuaJIT's FFI, so signing costs the client microseconds.
-- BENCH_NONCE keeps deliveries of separate runs apart.
local ffi = require("ffi")
ffi.cdef [[
typedef struct evp_md_st EVP_MD;
const EVP_MD *EVP_sha256(void);
unsigned char *HMAC(const EVP_MD *md, const void *key, int key_len,
                    const unsigned char *d, size_t n, unsigned char *out, unsigned int *out_len);
]]
local crypto = ffi.load("libcrypto.so.3")
local sha256 = crypto.EVP_sha256()
local digest = ffi.new("unsigned char[32]")
local digest_len = ffi.new("unsigned int[1]")
local hex = {}
for i = 0, 255 do hex[i] = string.format("%02x", i) end

local secret = os.getenv("BENCH_SECRET") or "bench-secret"
local repo = os.getenv("BENCH_REPO") or "bench"
local branch = os.getenv("BENCH_BRANCH") or "main"
local nonce = os.getenv("BENCH_NONCE") or tostring(os.time())

local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

local prefix, n
function init(args)
  prefix = nonce .. "-" .. tostring(tid)
  n = 0
end

local parts = {}
function request()
  n = n + 1
  local id = prefix .. "-" .. n
  local body = '{"ref":"refs/heads/' .. branch .. '","after":"' .. id ..
      '","repository":{"name":"' .. repo .. '"},"head_commit":{"message":"bench ' .. id .. '"}}'
  crypto.HMAC(sha256, secret, #secret, body, #body, digest, digest_len)
  for i = 0, 31 do parts[i + 1] = hex[digest[i]] end
  return wrk.format("POST", wrk.path, {
    ["Content-Type"] = "application/json",
    ["X-GitHub-Event"] = "push",
    ["X-GitHub-Delivery"] = id,
    ["X-Hub-Signature-256"] = "sha256=" .. table.concat(parts),
  }, body)
end
