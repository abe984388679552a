// The deploy files' structured checks, run by tests/deploy/check.sh: the Dockerfile, the
// Compose file, the Kubernetes manifests and the example configs, and then a smoke run of each
// config with the gateway (fake Omni, throwaway Redis). Prints one line per check,
// `ok - WHAT` or `not ok - WHAT` followed by indented reasons; check.sh counts them.
// Usage: node tests/deploy/check.mjs GATEWAY_BINARY   (from the repository root)
import { execFileSync, spawn, spawnSync } from "node:child_process";
import http from "node:http";
import https from "node:https";
import net from "node:net";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import YAML from "yaml";
import Ajv from "ajv";
import { DockerfileParser } from "dockerfile-ast";
import { validate as lintDockerfile } from "dockerfile-utils";
import * as core from "kubernetes-models/v1";
import * as apps from "kubernetes-models/apps/v1";
import * as policy from "kubernetes-models/policy/v1";
import * as networking from "kubernetes-models/networking.k8s.io/v1";

const root = process.cwd();
const bin = path.resolve(process.argv[2] || "build/omni-mcp-gateway");
const here = path.dirname(new URL(import.meta.url).pathname);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "deploy-check-"));
process.on("exit", () => fs.rmSync(tmp, { recursive: true, force: true }));

// ---- reporting ----
function report(name, problems) {
	if (problems.length === 0) {
		console.log(`ok - ${name}`);
	} else {
		console.log(`not ok - ${name}`);
		for (const p of problems) console.log(`    ${String(p).replace(/\n/g, "\n    ")}`);
	}
}
// Runs fn(problems) and reports; an exception is a problem too.
function check(name, fn) {
	const problems = [];
	try {
		fn(problems);
	} catch (e) {
		problems.push(`exception: ${e && e.stack ? e.stack : e}`);
	}
	report(name, problems);
	return problems.length === 0;
}
const rel = (p) => path.relative(root, p);
const isObj = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
const nonEmptyObj = (v) => isObj(v) && Object.keys(v).length > 0;

// ---- the gateway's own config check ----
let tlsPair = null;
function testCert() {
	if (tlsPair) return tlsPair;
	const dir = fs.mkdtempSync(path.join(tmp, "tls-"));
	tlsPair = { cert: path.join(dir, "cert.pem"), key: path.join(dir, "key.pem") };
	execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
		"-nodes", "-days", "1", "-subj", "/CN=deploy-check", "-keyout", tlsPair.key, "-out", tlsPair.cert],
		{ stdio: "ignore" });
	return tlsPair;
}

// The *_env names a config reads, and the absolute paths it reads (or writes: audit/log file).
function configRefs(cfg) {
	const envs = [], files = [];
	const walk = (v, keyPath) => {
		if (Array.isArray(v)) v.forEach((x, i) => walk(x, `${keyPath}[${i}]`));
		else if (isObj(v)) for (const [k, x] of Object.entries(v)) {
			const p = keyPath ? `${keyPath}.${k}` : k;
			if (k.endsWith("_env") && typeof x === "string") envs.push({ path: p, name: x });
			else if (typeof x === "string" && x.startsWith("/") &&
				(k.endsWith("_file") || k === "file" || (keyPath === "tls" && (k === "cert" || k === "key"))))
				files.push({ path: p, key: k, file: x });
			else walk(x, p);
		}
	};
	walk(cfg, "");
	return { envs, files };
}

// `omni-mcp-gateway check -c` on the config as deployed: each *_env set to a dummy value,
// each file it names present at the same path inside a sandbox (a real self-signed key pair
// for tls, a dummy secret for *_file, the directory for an audit or log file).
// provided: the env names the deployment provides (null: do not compare). Returns the refs.
function gatewayCheck(label, text, provided, problems) {
	let cfg;
	try {
		cfg = JSON.parse(text);
	} catch (e) {
		problems.push(`${label}: not JSON: ${e.message}`);
		return null;
	}
	const refs = configRefs(cfg);
	if (provided)
		for (const e of refs.envs)
			if (!provided.has(e.name)) problems.push(`${label}: ${e.path} names ${e.name}, which the deployment does not provide`);
	const sandbox = fs.mkdtempSync(path.join(tmp, "cfg-"));
	const moved = structuredClone(cfg);
	const set = (obj, dotted, value) => {
		const keys = dotted.replace(/\[(\d+)\]/g, ".$1").split(".");
		let o = obj;
		for (const k of keys.slice(0, -1)) o = o[k];
		o[keys.at(-1)] = value;
	};
	for (const f of refs.files) {
		const dest = path.join(sandbox, f.file);
		fs.mkdirSync(path.dirname(dest), { recursive: true });
		if (f.key === "cert" || f.key === "key") fs.copyFileSync(testCert()[f.key], dest);
		else if (f.key !== "file") fs.writeFileSync(dest, "dummy-secret-for-deploy-check\n", { mode: 0o600 });
		set(moved, f.path, dest);
	}
	const env = { PATH: process.env.PATH };
	for (const e of refs.envs)
		env[e.name] = e.path.endsWith("url_env") ? "redis://127.0.0.1:6379/0" : `dummy-${e.name.toLowerCase()}`;
	const file = path.join(sandbox, "config.json");
	fs.writeFileSync(file, JSON.stringify(moved, null, 2));
	const r = spawnSync(bin, ["check", "-c", file], { env, encoding: "utf8" });
	const out = `${r.stdout || ""}${r.stderr || ""}`.trim();
	if (r.status !== 0) problems.push(`${label}: omni-mcp-gateway check exits ${r.status}:\n${out}`);
	else if (/warning:/.test(out)) problems.push(`${label}: omni-mcp-gateway check warns:\n${out}`);
	else runnable.push({ label, cfg: moved, env, dir: sandbox });
	return { cfg, ...refs };
}
// The configs that passed `check`, sandboxed, for the smoke run; the admin paths the
// manifests' probes and health checks ask.
const runnable = [];
const probePaths = new Set();
const portOf = (listen) => Number(String(listen || "").split(":").at(-1));

// ---- YAML ----
function parseYamlDocs(file, problems) {
	const docs = YAML.parseAllDocuments(fs.readFileSync(file, "utf8"), { uniqueKeys: true, prettyErrors: true });
	const out = [];
	for (const d of docs) {
		for (const e of [...d.errors, ...d.warnings]) problems.push(`${rel(file)}: ${e.message}`);
		const v = d.toJS({ maxAliasCount: 0 });
		if (v !== null && v !== undefined) out.push(v);
	}
	return out;
}

// ===================================================================== Dockerfile
function dockerfileChecks() {
	const file = path.join(root, "deploy/Dockerfile");
	const text = fs.readFileSync(file, "utf8");
	const df = DockerfileParser.parse(text);
	const instr = df.getInstructions();
	const froms = df.getFROMs();
	const stageOf = (ins) => froms.filter((f) => f.getRange().start.line <= ins.getRange().start.line).length - 1;
	const stage = (n) => instr.filter((i) => stageOf(i) === n);
	const args = (i) => i.getArgumentsContent() || "";
	const json = (i) => { try { return JSON.parse(args(i)); } catch { return null; } };
	const last = froms.length - 1;
	const runtime = stage(last);
	const build = stage(0);

	check("Dockerfile: lints clean (dockerfile-utils)", (p) => {
		for (const d of lintDockerfile(text, {})) p.push(`line ${d.range.start.line + 1}: ${d.message}`);
	});

	check("Dockerfile: multi-stage, debian:12-slim build stage and runtime stage", (p) => {
		if (froms.length !== 2) p.push(`expected 2 stages, found ${froms.length}`);
		if (!froms[0] || froms[0].getImageName() !== "debian" || froms[0].getImageTag() !== "12-slim" || froms[0].getBuildStage() !== "build")
			p.push(`first stage must be FROM debian:12-slim AS build, is FROM ${froms[0] && args(froms[0])}`);
		if (!froms[last] || froms[last].getImageName() !== "debian" || froms[last].getImageTag() !== "12-slim")
			p.push(`runtime stage must be FROM debian:12-slim, is FROM ${froms[last] && args(froms[last])}`);
	});

	// The image's binary is built by the script CI runs.
	check("Dockerfile: the build stage runs deploy/build.sh, the script .ci/run builds with", (p) => {
		if (!build.some((i) => i.getKeyword() === "RUN" && /^deploy\/build\.sh(\s|$)/.test(args(i).trim())))
			p.push("no `RUN deploy/build.sh` in the build stage");
		const ci = fs.readFileSync(path.join(root, ".ci/run"), "utf8").split("\n").filter((l) => !/^\s*#/.test(l));
		if (!ci.some((l) => /(^|\s|&&|;)(\.\/)?deploy\/build\.sh(\s|$)/.test(l))) p.push(".ci/run does not run deploy/build.sh");
		const bs = fs.readFileSync(path.join(root, "deploy/build.sh"), "utf8");
		if (!/^make WERROR=1/m.test(bs)) p.push("deploy/build.sh does not run make WERROR=1");
		if (!/^deploy\/install-deps\.sh build/m.test(bs)) p.push("deploy/build.sh does not run deploy/install-deps.sh build");
	});

	// What the build stage copies is everything the build needs: deploy/build.sh is run for
	// real in a directory holding exactly those files (as the image's /src), and the build
	// context's ignore file lets each of them through.
	check("Dockerfile: the build stage's COPYs are a complete build context (deploy/build.sh run on exactly them)", (p) => {
		const ignoreFile = path.join(root, "deploy/Dockerfile.dockerignore");
		const ignore = fs.existsSync(ignoreFile) ? fs.readFileSync(ignoreFile, "utf8").split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#")) : [];
		const ctx = fs.mkdtempSync(path.join(tmp, "ctx-"));
		let workdir = "/";
		for (const i of build) {
			if (i.getKeyword() === "WORKDIR") workdir = path.posix.resolve(workdir, args(i));
			if (i.getKeyword() !== "COPY" && i.getKeyword() !== "ADD") continue;
			if (i.getKeyword() === "ADD") p.push(`line ${i.getRange().start.line + 1}: use COPY, not ADD`);
			const a = i.getArguments().map((x) => x.getValue()).filter((x) => !x.startsWith("--"));
			const dest = a.pop();
			for (const src of a) {
				const from = path.join(root, src);
				if (!fs.existsSync(from)) { p.push(`COPY ${src}: not in the repository`); continue; }
				if (!allowedByIgnore(ignore, src.replace(/\/$/, ""))) p.push(`COPY ${src}: excluded by deploy/Dockerfile.dockerignore`);
				// Docker's COPY: a directory's contents go into dest; a file goes into dest/ when
				// dest ends with a slash or there are several sources, else becomes dest.
				const destAbs = path.join(ctx, path.posix.resolve(workdir, dest));
				const to = fs.statSync(from).isDirectory() ? destAbs
					: dest.endsWith("/") || a.length > 1 ? path.join(destAbs, path.basename(src)) : destAbs;
				fs.mkdirSync(fs.statSync(from).isDirectory() ? to : path.dirname(to), { recursive: true });
				fs.cpSync(from, to, { recursive: true, filter: (s) => !/\.(o|d)$/.test(s) });
			}
		}
		if (workdir !== "/src") p.push(`build stage WORKDIR is ${workdir}, the runtime stage copies from /src`);
		const src = path.join(ctx, workdir);
		const r = spawnSync("nice", ["-n", "10", "deploy/build.sh", "-s"], { cwd: src, encoding: "utf8" });
		if (r.status !== 0) p.push(`deploy/build.sh in the copied context failed:\n${(r.stdout + r.stderr).trim().split("\n").slice(-15).join("\n")}`);
		else if (!fs.existsSync(path.join(src, "build/omni-mcp-gateway"))) p.push("deploy/build.sh did not make build/omni-mcp-gateway");
		const copyBin = runtime.find((i) => i.getKeyword() === "COPY" && i.getFlags().some((f) => f.getName() === "from" && f.getValue() === "build"));
		if (!copyBin) p.push("the runtime stage does not COPY --from=build");
		else {
			const a = copyBin.getArguments().map((x) => x.getValue()).filter((x) => !x.startsWith("--"));
			if (a[0] !== path.posix.join(workdir, "build/omni-mcp-gateway")) p.push(`runtime copies ${a[0]}, the build makes ${path.posix.join(workdir, "build/omni-mcp-gateway")}`);
			if (a[1] !== "/usr/local/bin/omni-mcp-gateway") p.push(`the binary goes to ${a[1]}, expected /usr/local/bin/omni-mcp-gateway (on PATH for ENTRYPOINT)`);
		}
	});

	// Runtime packages: each exists in Debian 12, and together they hold every shared library
	// the built binary needs (libc6 is in the base image).
	const pkgs = [];
	for (const i of runtime.filter((i) => i.getKeyword() === "RUN")) {
		const m = args(i).match(/apt-get install\s+((?:[^&;|]|\\\n)+)/);
		if (m) pkgs.push(...m[1].split(/\s+/).filter((w) => w && !w.startsWith("-") && w !== "\\"));
	}
	check(`Dockerfile: runtime packages exist in Debian (apt-cache show): ${pkgs.join(" ")}`, (p) => {
		if (pkgs.length === 0) p.push("no apt-get install in the runtime stage");
		// One apt-cache call for all (each call loads the whole cache); the packages it knows
		// are the "Package:" stanzas it prints. An empty or stale list gets one apt-get update.
		const known = () => new Set((spawnSync("apt-cache", ["show", "--no-all-versions", ...pkgs], { encoding: "utf8" }).stdout || "")
			.split("\n").map((l) => l.match(/^Package: (\S+)/)).filter(Boolean).map((m) => m[1]));
		let have = known();
		if (pkgs.some((k) => !have.has(k))) {
			spawnSync("apt-get", ["update", "-qq"], { stdio: "ignore" });
			have = known();
		}
		for (const k of pkgs) if (!have.has(k)) p.push(`${k}: not a Debian package here`);
	});
	check("Dockerfile: runtime packages provide every library the binary links (readelf NEEDED -> dpkg -S)", (p) => {
		const needed = execFileSync("readelf", ["-d", bin], { encoding: "utf8" }).split("\n")
			.map((l) => l.match(/\(NEEDED\).*\[(.+)\]/)).filter(Boolean).map((m) => m[1]);
		const ldd = execFileSync("ldd", [bin], { encoding: "utf8" });
		for (const lib of needed) {
			const m = ldd.match(new RegExp(`^\\s*${lib.replace(/[.+]/g, "\\$&")} => (\\S+)`, "m"));
			if (!m) { p.push(`${lib}: not found by ldd`); continue; }
			const real = fs.realpathSync(m[1]);
			const cands = [m[1], real, real.replace(/^\/usr\/lib\//, "/lib/"), real.replace(/^\/lib\//, "/usr/lib/")];
			let pkg = null;
			for (const c of cands) {
				const r = spawnSync("dpkg", ["-S", c], { encoding: "utf8" });
				if (r.status === 0) { pkg = r.stdout.split(":")[0]; break; }
			}
			if (!pkg) p.push(`${lib} (${real}): no Debian package owns it`);
			else if (pkg !== "libc6" && !pkgs.includes(pkg)) p.push(`${lib} comes from ${pkg}, which the runtime stage does not install`);
		}
		if (!pkgs.includes("ca-certificates")) p.push("ca-certificates missing (the upstream is HTTPS)");
	});

	check("Dockerfile: runtime runs as non-root, EXPOSE 8443 9090, HEALTHCHECK on admin /healthz, ENTRYPOINT and CMD", (p) => {
		const kw = (k) => runtime.filter((i) => i.getKeyword() === k);
		const user = kw("USER").at(-1);
		if (!user) p.push("no USER in the runtime stage (it would run as root)");
		else if (/^(0|root)(:|$)/.test(args(user))) p.push(`USER ${args(user)} is root`);
		else if (!/^\d+(:\d+)?$/.test(args(user))) p.push(`USER ${args(user)}: use a numeric UID so runAsNonRoot can verify it`);
		const exposed = kw("EXPOSE").flatMap((i) => args(i).split(/\s+/)).map((x) => x.replace(/\/tcp$/, ""));
		for (const port of ["8443", "9090"]) if (!exposed.includes(port)) p.push(`EXPOSE lacks ${port}`);
		const hc = kw("HEALTHCHECK").at(-1);
		if (!hc) p.push("no HEALTHCHECK");
		else {
			const cmd = args(hc);
			if (!/http:\/\/(127\.0\.0\.1|localhost):9090\/healthz/.test(cmd)) p.push(`HEALTHCHECK does not ask the admin port's /healthz: ${cmd}`);
			if (/\bcurl\b/.test(cmd) && !pkgs.includes("curl")) p.push("HEALTHCHECK uses curl, which the runtime stage does not install");
			for (const m of cmd.matchAll(/http:\/\/[^/"\s]+(\/[^"\s]*)/g)) probePaths.add(m[1]);
		}
		const ep = kw("ENTRYPOINT").at(-1), cmd = kw("CMD").at(-1);
		if (!ep || JSON.stringify(json(ep)) !== JSON.stringify(["omni-mcp-gateway"])) p.push(`ENTRYPOINT must be ["omni-mcp-gateway"], is ${ep && args(ep)}`);
		if (!cmd || JSON.stringify(json(cmd)) !== JSON.stringify(["-c", "/etc/omni-mcp-gateway/config.json"])) p.push(`CMD must be ["-c", "/etc/omni-mcp-gateway/config.json"], is ${cmd && args(cmd)}`);
		const stop = kw("STOPSIGNAL").at(-1);
		if (stop && args(stop) !== "SIGTERM") p.push(`STOPSIGNAL ${args(stop)}: the gateway drains on SIGTERM`);
	});
	const user = runtime.filter((i) => i.getKeyword() === "USER").at(-1);
	return { uid: user ? Number(args(user).split(":")[0]) : null };
}

// .dockerignore semantics for the patterns used here: the last matching pattern wins, `!`
// re-includes; `*` one path segment, `**` any, a directory pattern covers what is under it.
function allowedByIgnore(patterns, p) {
	let ignored = false;
	const toRe = (pat) => new RegExp("^" + pat.replace(/\/$/, "").replace(/[.+^${}()|[\]\\]/g, "\\$&")
		.replace(/\*\*\//g, "\u0000").replace(/\*\*/g, ".*").replace(/\*/g, "[^/]*").replace(/\?/g, "[^/]")
		.replace(/\u0000/g, "(?:.*/)?") + "(/.*)?$");
	for (const raw of patterns) {
		const neg = raw.startsWith("!");
		const pat = neg ? raw.slice(1) : raw;
		if (toRe(pat).test(p)) ignored = !neg;
	}
	return !ignored;
}

// ===================================================================== Compose
function composeChecks(image) {
	const file = path.join(root, "deploy/compose.yaml");
	const dir = path.dirname(file);
	const problems = [];
	const docs = parseYamlDocs(file, problems);
	const c = docs[0];
	check("compose.yaml: parses as one YAML document", (p) => {
		p.push(...problems);
		if (docs.length !== 1 || !isObj(c)) p.push("expected one YAML mapping");
	});
	if (!isObj(c)) return;
	// The Compose Specification's JSON schema as dclint ships it (names each bad key), then
	// dclint's own error rules.
	check("compose.yaml: valid against the Compose Specification schema; dclint finds no error", (p) => {
		const { $schema, ...schema } = JSON.parse(fs.readFileSync(path.join(here, "node_modules/dclint/schemas/compose.schema.json"), "utf8"));
		const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });
		const validate = ajv.compile(schema);
		if (!validate(c)) for (const e of validate.errors) p.push(`${e.instancePath || "/"}: ${e.message}${e.params && e.params.additionalProperty ? ` (${e.params.additionalProperty})` : ""}`);
		const r = spawnSync(process.execPath, [path.join(here, "node_modules/dclint/bin/dclint.cjs"), "-q", "--color=false", file], { encoding: "utf8" });
		if (r.status !== 0) p.push(`dclint:\n${(r.stdout + r.stderr).trim()}`);
	});
	const svc = c.services || {};
	const gw = svc.gateway, redis = svc.redis;
	check("compose.yaml: services gateway and redis (redis:7), both with healthchecks", (p) => {
		if (!isObj(gw)) p.push("no gateway service");
		if (!isObj(redis)) p.push("no redis service");
		else if (redis.image !== "redis:7") p.push(`redis image is ${redis.image}, expected redis:7`);
		for (const [n, s] of Object.entries(svc)) if (!isObj(s.healthcheck) || !s.healthcheck.test) p.push(`${n}: no healthcheck`);
		if (isObj(gw) && gw.depends_on && isObj(gw.depends_on) && gw.depends_on.redis?.condition !== "service_healthy")
			p.push("gateway should wait for redis to be healthy");
	});
	check("compose.yaml: every file it references exists (build context, Dockerfile, mounts), secrets stay git-ignored", (p) => {
		for (const [n, s] of Object.entries(svc)) {
			if (s.build) {
				const b = typeof s.build === "string" ? { context: s.build } : s.build;
				const ctx = path.resolve(dir, b.context || ".");
				if (!fs.existsSync(ctx)) p.push(`${n}: build context ${b.context} does not exist`);
				const dfile = path.resolve(ctx, b.dockerfile || "Dockerfile");
				if (!fs.existsSync(dfile)) p.push(`${n}: Dockerfile ${b.dockerfile} does not exist`);
				else if (path.relative(root, dfile) !== "deploy/Dockerfile") p.push(`${n}: builds ${rel(dfile)}, not deploy/Dockerfile`);
			}
			for (const v of s.volumes || []) {
				const src = typeof v === "string" ? v.split(":")[0] : v.source;
				const type = typeof v === "string" ? (/^[./~]/.test(src) ? "bind" : "volume") : v.type;
				if (type === "bind" && !fs.existsSync(path.resolve(dir, src))) p.push(`${n}: mounts ${src}, which does not exist`);
				if (type === "volume" && src && !(c.volumes && src in c.volumes)) p.push(`${n}: named volume ${src} is not declared`);
			}
			for (const e of [].concat(s.env_file || [])) {
				const f = typeof e === "string" ? e : e.path;
				if (!fs.existsSync(path.resolve(dir, f)) && !(isObj(e) && e.required === false)) p.push(`${n}: env_file ${f} does not exist`);
			}
			for (const sec of s.secrets || []) {
				const name = typeof sec === "string" ? sec : sec.source;
				if (!c.secrets || !(name in c.secrets)) p.push(`${n}: secret ${name} is not declared`);
			}
		}
		for (const [name, sec] of Object.entries(c.secrets || {})) {
			if (!sec.file) continue;
			const f = path.resolve(dir, sec.file);
			// Secret files are the operator's: they live in deploy/secrets/, which git ignores.
			if (path.dirname(f) !== path.join(root, "deploy/secrets")) p.push(`secret ${name}: ${sec.file} is outside deploy/secrets/`);
			else if (spawnSync("git", ["check-ignore", "-q", rel(f)], { cwd: root }).status !== 0) p.push(`secret ${name}: ${sec.file} is not git-ignored`);
		}
		if (!fs.existsSync(path.join(root, "deploy/secrets/.gitignore"))) p.push("deploy/secrets/.gitignore missing");
	});
	if (!isObj(gw)) return;
	check("compose.yaml: the gateway's mounted config passes `omni-mcp-gateway check`; what it names is mounted or in its environment", (p) => {
		const vol = (gw.volumes || []).map((v) => typeof v === "string" ? { source: v.split(":")[0], target: v.split(":")[1] } : v);
		const cfgMount = vol.find((v) => v.target === "/etc/omni-mcp-gateway/config.json");
		if (!cfgMount) { p.push("nothing mounted at /etc/omni-mcp-gateway/config.json"); return; }
		const env = new Set(Array.isArray(gw.environment) ? gw.environment.map((e) => e.split("=")[0]) : Object.keys(gw.environment || {}));
		const refs = gatewayCheck(rel(path.resolve(dir, cfgMount.source)), fs.readFileSync(path.resolve(dir, cfgMount.source), "utf8"), env, p);
		if (!refs) return;
		const secretNames = (gw.secrets || []).map((s) => typeof s === "string" ? { name: s, target: `/run/secrets/${s}` } : { name: s.source, target: s.target?.startsWith("/") ? s.target : `/run/secrets/${s.target || s.source}` });
		for (const f of refs.files) {
			const underVolume = vol.some((v) => f.file === v.target || f.file.startsWith(v.target.replace(/\/?$/, "/")));
			if (!underVolume && !secretNames.some((s) => s.target === f.file)) p.push(`${f.path}: ${f.file} is neither a mounted secret nor under a mounted volume`);
			if (f.key === "file" && !vol.some((v) => f.file.startsWith(v.target.replace(/\/?$/, "/")) && !/:ro$/.test(v.mode || ""))) p.push(`${f.path}: ${f.file} is not on a writable volume (read_only root)`);
		}
		const listen = portOf(refs.cfg.listen), admin = portOf(refs.cfg.admin?.listen || "127.0.0.1:9090");
		const published = (gw.ports || []).map((x) => Number(String(typeof x === "object" ? x.target : x).split(":").at(-1)));
		if (!published.includes(listen)) p.push(`the config listens on ${listen}, which is not published`);
		if (!published.includes(admin)) p.push(`the admin port ${admin} is not published`);
		const hc = [].concat(gw.healthcheck?.test || []).join(" ");
		if (!hc.includes(`:${admin}/healthz`)) p.push(`healthcheck does not ask :${admin}/healthz: ${hc}`);
		for (const m of hc.matchAll(/http:\/\/[^/"\s]+(\/[^"\s]*)/g)) probePaths.add(m[1]);
		const drain = refs.cfg.drain_timeout_ms ?? 10000;
		const grace = String(gw.stop_grace_period || "10s").match(/^(\d+)(s|m)$/);
		const graceMs = grace ? Number(grace[1]) * (grace[2] === "m" ? 60000 : 1000) : 10000;
		if (graceMs <= drain) p.push(`stop_grace_period ${gw.stop_grace_period || "10s (default)"} is not longer than drain_timeout_ms ${drain}`);
		if (image.uid !== null && gw.user && Number(String(gw.user).split(":")[0]) !== image.uid) p.push(`user ${gw.user} is not the image's UID ${image.uid}`);
		if (gw.read_only !== true) p.push("gateway root filesystem is not read_only");
		if (!(gw.cap_drop || []).includes("ALL")) p.push("gateway does not drop ALL capabilities");
	});
}

// ===================================================================== Kubernetes
const models = {
	"v1/Namespace": core.Namespace, "v1/ConfigMap": core.ConfigMap, "v1/Secret": core.Secret,
	"v1/Service": core.Service, "apps/v1/Deployment": apps.Deployment,
	"policy/v1/PodDisruptionBudget": policy.PodDisruptionBudget,
	"networking.k8s.io/v1/NetworkPolicy": networking.NetworkPolicy,
};
const tsTypes = {
	"v1": "kubernetes-types/core/v1", "apps/v1": "kubernetes-types/apps/v1",
	"policy/v1": "kubernetes-types/policy/v1", "networking.k8s.io/v1": "kubernetes-types/networking/v1",
};
const labelsMatch = (sel, labels) => nonEmptyObj(sel) && Object.entries(sel).every(([k, v]) => labels && labels[k] === v);

function k8sChecks(image) {
	const dir = path.join(root, "deploy/k8s");
	const files = fs.readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).sort();
	const docs = [];
	let kustomization = null;
	for (const f of files) {
		const problems = [];
		const parsed = parseYamlDocs(path.join(dir, f), problems);
		check(`k8s/${f}: parses as YAML (${parsed.length} document${parsed.length === 1 ? "" : "s"})`, (p) => {
			p.push(...problems);
			if (parsed.length === 0) p.push("no document");
		});
		for (const [i, d] of parsed.entries()) {
			if (d && d.kind === "Kustomization") kustomization = { file: f, doc: d };
			else docs.push({ file: f, index: i, doc: d, label: `k8s/${f}${parsed.length > 1 ? `#${i + 1}` : ""} ${d?.kind || "?"}/${d?.metadata?.name || "?"}` });
		}
	}

	// Each document: apiVersion, kind, metadata.name; the kind's schema (required fields and
	// types, kubernetes-models); no field its kind does not have (TypeScript excess-property
	// check against kubernetes-types, which catches a misspelt readinessProbe).
	const tsLines = ["// generated by tests/deploy/check.mjs", "export {};"];
	const tsDocAt = [];
	for (const d of docs) {
		check(`${d.label}: apiVersion, kind, metadata.name and its kind's schema`, (p) => {
			const o = d.doc;
			if (!isObj(o)) { p.push("not a mapping"); return; }
			for (const k of ["apiVersion", "kind"]) if (typeof o[k] !== "string" || !o[k]) p.push(`${k} missing`);
			if (typeof o.metadata?.name !== "string" || !o.metadata.name) p.push("metadata.name missing");
			const M = models[`${o.apiVersion}/${o.kind}`];
			if (!M) { p.push(`unexpected kind ${o.apiVersion}/${o.kind}`); return; }
			try {
				new M(o).validate();
			} catch (e) {
				p.push(`schema: ${e.message}`);
			}
			if (o.kind !== "Namespace" && o.metadata?.namespace !== "omni-mcp-gateway") p.push(`metadata.namespace is ${o.metadata?.namespace}, expected omni-mcp-gateway`);
		});
		const mod = tsTypes[d.doc?.apiVersion];
		if (mod && d.doc?.kind) {
			const alias = `T${tsDocAt.length}`;
			tsLines.push(`import type { ${d.doc.kind} as ${alias} } from "${mod}";`);
			tsDocAt.push({ d, alias });
		}
	}
	const body = [];
	for (const [i, { d, alias }] of tsDocAt.entries()) {
		tsDocAt[i].line = tsLines.length + body.length + 1;
		body.push(`const d${i}: ${alias} = ${JSON.stringify(d.doc)};`, `void d${i};`);
	}
	check("k8s: no field unknown to its kind (tsc excess-property check against kubernetes-types 1.30)", (p) => {
		const dirTs = fs.mkdtempSync(path.join(here, ".tsc-"));
		try {
			const f = path.join(dirTs, "manifests.ts");
			fs.writeFileSync(f, [...tsLines, ...body].join("\n") + "\n");
			const tsc = path.join(here, "node_modules/typescript/bin/tsc");
			const r = spawnSync(process.execPath, [tsc, "--noEmit", "--strict", "--target", "es2020", "--moduleResolution", "node", f], { cwd: here, encoding: "utf8" });
			if (r.status !== 0) {
				for (const line of (r.stdout + r.stderr).trim().split("\n")) {
					const m = line.match(/manifests\.ts\((\d+),\d+\): (.*)/);
					const at = m && tsDocAt.find((t) => t.line === Number(m[1]));
					p.push(at ? `${at.d.label}: ${m[2]}` : line);
				}
			}
		} finally {
			fs.rmSync(dirTs, { recursive: true, force: true });
		}
	});

	const byKind = (k) => docs.filter((d) => d.doc?.kind === k);
	const deployments = byKind("Deployment"), services = byKind("Service"), configMaps = byKind("ConfigMap"), secrets = byKind("Secret");
	const secretKeys = (name) => {
		const s = secrets.find((x) => x.doc.metadata.name === name)?.doc;
		return s ? new Set([...Object.keys(s.data || {}), ...Object.keys(s.stringData || {})]) : null;
	};
	const podSpec = (d) => d.doc.spec?.template?.spec || {};
	const containerPorts = (d) => (podSpec(d).containers || []).flatMap((c) => c.ports || []);

	for (const d of deployments) {
		check(`${d.label}: selector matches the template's labels; containers have image and ports; probes name declared ports`, (p) => {
			const s = d.doc.spec || {};
			if (!nonEmptyObj(s.selector?.matchLabels)) p.push("spec.selector.matchLabels missing");
			else if (!labelsMatch(s.selector.matchLabels, s.template?.metadata?.labels)) p.push("spec.selector.matchLabels do not match spec.template.metadata.labels");
			const cs = podSpec(d).containers || [];
			if (cs.length === 0) p.push("no containers");
			for (const c of cs) {
				if (!c.image) p.push(`container ${c.name}: no image`);
				if (!(c.ports || []).length) p.push(`container ${c.name}: no ports`);
				const names = new Set((c.ports || []).map((x) => x.name).filter(Boolean));
				const nums = new Set((c.ports || []).map((x) => x.containerPort));
				for (const kind of ["readinessProbe", "livenessProbe", "startupProbe"]) {
					const pr = c[kind];
					if (!pr) continue;
					const port = pr.httpGet?.port ?? pr.tcpSocket?.port ?? pr.grpc?.port;
					if (port === undefined) { if (!pr.exec) p.push(`container ${c.name}: ${kind} has no port or exec`); continue; }
					if (typeof port === "string" ? !names.has(port) : !nums.has(port)) p.push(`container ${c.name}: ${kind} port ${port} is not a declared containerPort`);
				}
				if (!c.readinessProbe) p.push(`container ${c.name}: no readinessProbe`);
				if (!c.livenessProbe) p.push(`container ${c.name}: no livenessProbe`);
				if (!c.resources?.requests || !c.resources?.limits) p.push(`container ${c.name}: resources.requests and limits`);
			}
		});
		// Pod Security Standards, restricted profile (what the Namespace label enforces).
		check(`${d.label}: pods meet the restricted Pod Security Standard (non-root, read-only root, no privilege escalation, drop ALL, RuntimeDefault seccomp)`, (p) => {
			const ps = podSpec(d), psc = ps.securityContext || {};
			for (const k of ["hostNetwork", "hostPID", "hostIPC"]) if (ps[k]) p.push(`${k} is set`);
			if ((ps.volumes || []).some((v) => v.hostPath)) p.push("hostPath volume");
			for (const c of [...(ps.initContainers || []), ...(ps.containers || [])]) {
				const sc = c.securityContext || {};
				if (!(sc.runAsNonRoot ?? psc.runAsNonRoot)) p.push(`${c.name}: runAsNonRoot not true`);
				if ((sc.runAsUser ?? psc.runAsUser) === 0) p.push(`${c.name}: runAsUser 0`);
				if (sc.allowPrivilegeEscalation !== false) p.push(`${c.name}: allowPrivilegeEscalation not false`);
				if (sc.privileged) p.push(`${c.name}: privileged`);
				if (sc.readOnlyRootFilesystem !== true) p.push(`${c.name}: readOnlyRootFilesystem not true`);
				if (!(sc.capabilities?.drop || []).includes("ALL")) p.push(`${c.name}: capabilities.drop lacks ALL`);
				if ((sc.capabilities?.add || []).some((x) => x !== "NET_BIND_SERVICE")) p.push(`${c.name}: adds capabilities`);
				const sp = (sc.seccompProfile || psc.seccompProfile)?.type;
				if (sp !== "RuntimeDefault" && sp !== "Localhost") p.push(`${c.name}: seccompProfile not RuntimeDefault`);
			}
		});
	}

	const gw = deployments.find((d) => d.doc.metadata.name === "omni-mcp-gateway");
	check("k8s gateway Deployment: 2 replicas, readiness /readyz and liveness /healthz on the admin port, config from the ConfigMap, secrets from the Secret", (p) => {
		if (!gw) { p.push("no Deployment omni-mcp-gateway"); return; }
		const s = gw.doc.spec, ps = podSpec(gw);
		if (s.replicas !== 2) p.push(`replicas ${s.replicas}, expected 2`);
		const c = (ps.containers || [])[0] || {};
		const adminPort = (c.ports || []).find((x) => x.name === "admin");
		if (!adminPort) p.push("no container port named admin");
		if (c.readinessProbe?.httpGet?.path !== "/readyz" || c.readinessProbe?.httpGet?.port !== "admin") p.push("readinessProbe is not httpGet /readyz on port admin");
		if (c.livenessProbe?.httpGet?.path !== "/healthz" || c.livenessProbe?.httpGet?.port !== "admin") p.push("livenessProbe is not httpGet /healthz on port admin");
		for (const k of ["readinessProbe", "livenessProbe", "startupProbe"]) if (c[k]?.httpGet?.path) probePaths.add(c[k].httpGet.path);
		if (image.uid !== null && (c.securityContext?.runAsUser ?? ps.securityContext?.runAsUser) !== image.uid) p.push(`runAsUser is not the image's UID ${image.uid}`);
		// Config: the -c path is a key of a mounted ConfigMap.
		const a = c.args || [];
		const cfgPath = a[a.indexOf("-c") + 1];
		if (a.indexOf("-c") < 0 || !cfgPath) { p.push("args do not pass -c CONFIG"); return; }
		const mount = (c.volumeMounts || []).find((m) => cfgPath.startsWith(m.mountPath.replace(/\/?$/, "/")));
		const vol = mount && (ps.volumes || []).find((v) => v.name === mount.name);
		const cm = vol?.configMap && configMaps.find((x) => x.doc.metadata.name === vol.configMap.name);
		const key = mount && path.posix.relative(mount.mountPath, cfgPath);
		if (!cm) p.push(`${cfgPath} is not in a mounted ConfigMap of this namespace`);
		else if (!(key in (cm.doc.data || {}))) p.push(`ConfigMap ${cm.doc.metadata.name} has no key ${key}`);
		if (mount && mount.subPath) p.push("the config is mounted with subPath (it would never see ConfigMap updates)");
		// Secrets: env from the Secret.
		const refs = (c.envFrom || []).map((e) => e.secretRef?.name).filter(Boolean);
		if (refs.length === 0) p.push("no envFrom secretRef");
		for (const r of refs) if (!secretKeys(r)) p.push(`envFrom names Secret ${r}, which is not defined`);
		// Stopping: the grace period covers preStop + drain.
		const cfgText = cm?.doc.data?.[key];
		let drain = 10000;
		try { drain = JSON.parse(cfgText).drain_timeout_ms ?? 10000; } catch { /* reported by the ConfigMap check */ }
		const pre = c.lifecycle?.preStop?.exec?.command?.join(" ").match(/sleep (\d+)/);
		const need = drain / 1000 + (pre ? Number(pre[1]) : 0);
		const grace = ps.terminationGracePeriodSeconds ?? 30;
		if (grace <= need) p.push(`terminationGracePeriodSeconds ${grace} is not longer than preStop + drain (${need} s)`);
		if (s.strategy?.rollingUpdate?.maxUnavailable !== 0 && s.strategy?.rollingUpdate?.maxUnavailable !== "0%") p.push("rolling update may take a replica down before its successor is ready (maxUnavailable)");
	});

	const cmText = gw && (() => {
		const c = podSpec(gw).containers?.[0] || {};
		const a = c.args || [];
		const cfgPath = a[a.indexOf("-c") + 1] || "";
		const cm = configMaps.find((x) => x.doc.metadata.name === "omni-mcp-gateway-config");
		return cm?.doc.data?.[path.posix.basename(cfgPath)];
	})();
	for (const d of configMaps) {
		check(`${d.label}: has data${d.doc.data?.["config.json"] !== undefined ? "; its config.json passes `omni-mcp-gateway check` with the Secret's keys as env" : ""}`, (p) => {
			if (!nonEmptyObj(d.doc.data) && !nonEmptyObj(d.doc.binaryData)) { p.push("no data"); return; }
			const text = d.doc.data?.["config.json"];
			if (text === undefined) return;
			const gwSecret = gw && (podSpec(gw).containers?.[0]?.envFrom || []).map((e) => e.secretRef?.name).find(Boolean);
			const refs = gatewayCheck(`${d.label} config.json`, text, gwSecret ? secretKeys(gwSecret) : new Set(), p);
			if (!refs) return;
			if (refs.files.length) p.push(`names files not in the pod: ${refs.files.map((f) => f.file).join(", ")}`);
			// Ports and Redis agree with the Deployment and the Redis Service.
			if (gw) {
				const ports = containerPorts(gw);
				const mcp = ports.find((x) => x.name === "mcp"), admin = ports.find((x) => x.name === "admin");
				if (!mcp || portOf(refs.cfg.listen) !== mcp.containerPort) p.push(`listen ${refs.cfg.listen} is not the mcp containerPort`);
				if (!admin || portOf(refs.cfg.admin?.listen) !== admin.containerPort) p.push(`admin.listen ${refs.cfg.admin?.listen} is not the admin containerPort`);
				if (/^127\.|^\[::1\]|^localhost/.test(String(refs.cfg.admin?.listen || "127.0.0.1"))) p.push("admin.listen is loopback: the kubelet's probes could not reach it");
			}
			const url = refs.cfg.redis?.url;
			if (url) {
				const m = url.match(/^redis:\/\/(?:[^@]*@)?([^:/]+):(\d+)/);
				const rs = m && services.find((s) => s.doc.metadata.name === m[1]);
				if (!rs) p.push(`redis.url ${url} names no Service of this namespace`);
				else if (!(rs.doc.spec.ports || []).some((x) => x.port === Number(m[2]))) p.push(`Service ${m[1]} has no port ${m[2]}`);
			} else p.push("no redis.url: replicas would not share rate limits, cache and audit");
		});
	}
	if (gw && cmText === undefined) report("k8s: the gateway's config.json is in ConfigMap omni-mcp-gateway-config", ["not found"]);

	for (const d of secrets) {
		check(`${d.label}: has data or stringData, every value a clear placeholder`, (p) => {
			const vals = { ...Object.fromEntries(Object.entries(d.doc.data || {}).map(([k, v]) => [k, Buffer.from(String(v), "base64").toString()])), ...(d.doc.stringData || {}) };
			if (!nonEmptyObj(vals)) p.push("no data or stringData");
			for (const [k, v] of Object.entries(vals)) if (!/FAKE/.test(String(v)) || !/replace/i.test(String(v))) p.push(`${k}: not an obvious placeholder (use FAKE-...-replace-me)`);
		});
	}

	for (const d of services) {
		check(`${d.label}: selector picks a Deployment's pods; ports target declared container ports`, (p) => {
			const s = d.doc.spec || {};
			if (!nonEmptyObj(s.selector)) { p.push("no selector"); return; }
			if (!(s.ports || []).length) p.push("no ports");
			const target = deployments.find((x) => labelsMatch(s.selector, x.doc.spec?.template?.metadata?.labels));
			if (!target) { p.push("selector matches no Deployment's pod labels"); return; }
			const ports = containerPorts(target);
			for (const port of s.ports || []) {
				if (!port.port) p.push("a port without port");
				const t = port.targetPort ?? port.port;
				if (typeof t === "string" ? !ports.some((x) => x.name === t) : !ports.some((x) => x.containerPort === t)) p.push(`targetPort ${t} is not a containerPort of ${target.doc.metadata.name}`);
			}
			if (s.sessionAffinity && s.sessionAffinity !== "None") p.push("session affinity: the gateway needs none");
		});
	}

	for (const d of byKind("PodDisruptionBudget")) {
		check(`${d.label}: selector picks a Deployment's pods and leaves room to evict`, (p) => {
			const s = d.doc.spec || {};
			if (!nonEmptyObj(s.selector?.matchLabels) && !(s.selector?.matchExpressions || []).length) { p.push("no selector"); return; }
			const target = deployments.find((x) => labelsMatch(s.selector.matchLabels, x.doc.spec?.template?.metadata?.labels));
			if (!target) { p.push("selector matches no Deployment"); return; }
			if (s.minAvailable === undefined && s.maxUnavailable === undefined) p.push("neither minAvailable nor maxUnavailable");
			if (typeof s.minAvailable === "number" && s.minAvailable >= (target.doc.spec.replicas ?? 1)) p.push(`minAvailable ${s.minAvailable} >= replicas: no node could ever be drained`);
		});
	}

	for (const d of byKind("NetworkPolicy")) {
		check(`${d.label}: selects Redis's pods and admits the gateway's`, (p) => {
			const s = d.doc.spec || {};
			const target = deployments.find((x) => labelsMatch(s.podSelector?.matchLabels, x.doc.spec?.template?.metadata?.labels));
			if (!target) p.push("podSelector matches no Deployment");
			const froms = (s.ingress || []).flatMap((r) => r.from || []);
			if (gw && !froms.some((f) => labelsMatch(f.podSelector?.matchLabels, gw.doc.spec.template.metadata.labels))) p.push("the gateway's pods are not admitted");
		});
	}

	check("k8s/kustomization.yaml: lists every manifest but secret.yaml, each existing", (p) => {
		if (!kustomization) { p.push("no kustomization.yaml"); return; }
		const res = kustomization.doc.resources || [];
		for (const r of res) if (!fs.existsSync(path.join(dir, r))) p.push(`resource ${r} does not exist`);
		for (const f of files) if (f !== kustomization.file && f !== "secret.yaml" && !res.includes(f)) p.push(`${f} is not listed`);
		if (res.includes("secret.yaml")) p.push("secret.yaml is listed: re-applying would overwrite the real Secret with placeholders");
	});
}

// ===================================================================== example config
function exampleConfigCheck() {
	check("deploy/config.example.json: passes `omni-mcp-gateway check`; its *_env names are in deploy/env.example", (p) => {
		const env = new Set(fs.readFileSync(path.join(root, "deploy/env.example"), "utf8").split("\n")
			.map((l) => l.match(/^([A-Za-z_][A-Za-z0-9_]*)=/)).filter(Boolean).map((m) => m[1]));
		const refs = gatewayCheck("deploy/config.example.json", fs.readFileSync(path.join(root, "deploy/config.example.json"), "utf8"), env, p);
		if (!refs) return;
		// What the systemd unit grants: the audit file in its LogsDirectory.
		for (const f of refs.files)
			if (f.key === "file" && !f.file.startsWith("/var/log/omni-mcp-gateway/")) p.push(`${f.path}: ${f.file} is outside /var/log/omni-mcp-gateway (the unit's LogsDirectory, the only place it may write)`);
	});
}

// ===================================================================== smoke run
// Each config that passed `check` is run for real, as deployed but on loopback ports, in front
// of the fake Omni (tests/fake-omni) and a throwaway Redis: the admin paths the manifests'
// probes and health checks ask must answer 200 once it is ready, /metrics must be Prometheus
// text, the MCP path must answer (401 without a member token, over TLS when the config has
// it), and SIGTERM must end it with exit 0 within the drain timeout.
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
function freePort() {
	return new Promise((resolve, reject) => {
		const s = net.createServer();
		s.on("error", reject);
		s.listen(0, "127.0.0.1", () => { const { port } = s.address(); s.close(() => resolve(port)); });
	});
}
function get(url, opts = {}) {
	return new Promise((resolve) => {
		const mod = url.startsWith("https:") ? https : http;
		const req = mod.request(url, { method: opts.method || "GET", headers: opts.headers, rejectUnauthorized: false, timeout: 3000 }, (res) => {
			let body = "";
			res.setEncoding("utf8");
			res.on("data", (d) => { body += d; });
			res.on("end", () => resolve({ status: res.statusCode, body }));
		});
		req.on("timeout", () => req.destroy(new Error("timeout")));
		req.on("error", (e) => resolve({ status: 0, body: String(e.message) }));
		req.end(opts.body);
	});
}
async function until(fn, ms) {
	const end = Date.now() + ms;
	let last;
	while (Date.now() < end) {
		last = await fn();
		if (last.ok) return last;
		await sleep(100);
	}
	return last;
}
function exited(child, ms) {
	return new Promise((resolve) => {
		if (child.exitCode !== null || child.signalCode !== null) return resolve({ code: child.exitCode, signal: child.signalCode });
		const t = setTimeout(() => resolve(null), ms);
		child.once("exit", (code, signal) => { clearTimeout(t); resolve({ code, signal }); });
	});
}

async function smoke() {
	const children = [];
	const stopAll = () => { for (const c of children) if (c.exitCode === null) c.kill("SIGKILL"); };
	process.on("exit", stopAll);
	let upstream = null, redisUrl = null;
	const setup = [];
	try {
		const rport = await freePort();
		const redis = spawn("redis-server", ["--port", String(rport), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], { stdio: "ignore" });
		children.push(redis);
		const r = await until(() => new Promise((resolve) => {
			const s = net.connect(rport, "127.0.0.1", () => { s.end(); resolve({ ok: true }); });
			s.on("error", () => resolve({ ok: false }));
		}), 5000);
		if (r.ok) redisUrl = `redis://127.0.0.1:${rport}/0`;
		else setup.push("redis-server did not start");
		const omni = spawn(process.execPath, [path.join(root, "tests/fake-omni/server.mjs"), "--port", "0"], { stdio: ["ignore", "pipe", "pipe"] });
		children.push(omni);
		let out = "", err = "";
		omni.stdout.on("data", (d) => { out += d; });
		omni.stderr.on("data", (d) => { err += d; });
		const o = await until(async () => ({ ok: /"listening":true/.test(out) || omni.exitCode !== null }), 15000);
		const m = out.match(/"url":"([^"]+)"/);
		if (o && m) upstream = m[1];
		else setup.push(`fake Omni did not start (tests/: npm ci?): ${err.trim().split("\n").slice(-5).join("\n")}`);
	} catch (e) {
		setup.push(String(e));
	}
	if (runnable.length === 0) report("smoke: deploy configs run", ["no config passed `check`"]);
	for (const r of runnable) {
		const problems = [...setup];
		if (upstream && redisUrl) await smokeOne(r, upstream, redisUrl, problems, children);
		report(`smoke: ${r.label} runs: admin ${[...probePaths].sort().join(" ")} 200, /metrics, MCP path answers, SIGTERM exits 0`, problems);
	}
	stopAll();
}

async function smokeOne(r, upstream, redisUrl, p, children) {
	const cfg = structuredClone(r.cfg);
	const [port, adminPort] = [await freePort(), await freePort()];
	cfg.listen = `127.0.0.1:${port}`;
	cfg.admin = { ...(cfg.admin || {}), listen: `127.0.0.1:${adminPort}` };
	cfg.upstream.url = upstream;
	if (cfg.redis?.url) cfg.redis.url = redisUrl;
	const env = { ...r.env };
	if (cfg.redis?.url_env) env[cfg.redis.url_env] = redisUrl;
	const file = path.join(r.dir, "smoke.json");
	fs.writeFileSync(file, JSON.stringify(cfg, null, 2));
	const gw = spawn(bin, ["-c", file], { env, stdio: ["ignore", "ignore", "pipe"] });
	children.push(gw);
	let log = "";
	gw.stderr.on("data", (d) => { log += d; });
	const tail = () => log.trim().split("\n").slice(-8).join("\n");
	const admin = `http://127.0.0.1:${adminPort}`;
	try {
		const h = await until(async () => { const x = await get(`${admin}/healthz`); return { ok: x.status === 200, ...x }; }, 5000);
		if (!h.ok) { p.push(`/healthz: ${h.status} ${h.body.trim()}\n${tail()}`); return; }
		const rd = await until(async () => { const x = await get(`${admin}/readyz`); return { ok: x.status === 200, ...x }; }, 10000);
		if (!rd.ok) p.push(`/readyz never 200: ${rd.status} ${rd.body.trim()}`);
		for (const pth of probePaths) {
			const x = await get(`${admin}${pth}`);
			if (x.status !== 200) p.push(`${pth}: ${x.status} ${x.body.trim()}`);
		}
		const met = await get(`${admin}/metrics`);
		if (met.status !== 200 || !/^# TYPE \S+ (counter|gauge|histogram)/m.test(met.body)) p.push(`/metrics: ${met.status}, not Prometheus text`);
		const scheme = cfg.tls ? "https" : "http";
		const mcp = await get(`${scheme}://127.0.0.1:${port}${cfg.mcp_path || "/mcp"}`, {
			method: "POST", headers: { "content-type": "application/json", accept: "application/json, text/event-stream" },
			body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "ping" }),
		});
		if (mcp.status !== 401) p.push(`POST ${scheme} MCP path without a token: ${mcp.status} (expected 401) ${mcp.body.slice(0, 200)}`);
	} finally {
		gw.kill("SIGTERM");
		const drain = cfg.drain_timeout_ms ?? 10000;
		const e = await exited(gw, drain + 5000);
		if (!e) p.push(`SIGTERM: still running after ${drain + 5000} ms`);
		else if (e.code !== 0) p.push(`SIGTERM: exit ${e.code ?? e.signal}\n${tail()}`);
	}
}

if (!fs.existsSync(bin)) {
	report(`gateway binary ${bin}`, ["missing: run make first"]);
	process.exit(0);
}
const image = dockerfileChecks();
composeChecks(image);
k8sChecks(image);
exampleConfigCheck();
await smoke();
