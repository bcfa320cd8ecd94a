/* cryptvol-keymgr COMMAND --help: the description of every option. The
 * parser (parse_args) prints, for --help, the options it accepts for the
 * command, each described here, so that the help cannot miss one. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "common/cleanup.h"
#include "keymgr.h"

/* One option's help: for command cmd (NULL: for any command without its
 * own entry), its argument's name (NULL: none) and what it does. */
static const struct {
  const char *cmd, *name, *arg, *text;
} docs[] = {
  /* create */
  { "create", "wrap", "SPEC",
    "a way to unlock the volume (repeatable, at least one): file:KEYFILE,\n"
    "passphrase, kms:KEY-REF or pkcs11:URI; a first kms: wrap makes the\n"
    "DEK with KMS GenerateDataKey. A relative KEYFILE is stored absolute" },
  { "create", "size", "SIZE",
    "data size (K, M, G, T suffixes); needed when VOLUME does not exist" },
  { "create", "sector-size", "4096|512", "encryption sector size (4096)" },
  { "create", "detached-header", "FILE",
    "put the header in FILE (created, never overwritten)" },
  { "create", "data-offset", "BYTES",
    "where the data starts in VOLUME (16 MiB; with a detached header, 4 KiB)" },
  { "create", "import-key", "FILE",
    "use the 64-byte raw master key in FILE as the DEK (adopt LUKS)" },
  { "create", "yes", NULL, "format a target that is not blank" },
  /* info */
  { "info", "check", NULL,
    "also ask each key's service for its state (a KMS key disabled or\n"
    "pending deletion exits 2)" },
  /* add-wrap, remove-wrap, rewrap */
  { "add-wrap", "wrap", "SPEC",
    "the new wrap: file:KEYFILE (stored absolute), passphrase, kms:KEY or\n"
    "pkcs11:URI" },
  { "rewrap", "to", "SPEC",
    "the key to move the wrap to: file:KEYFILE (stored absolute),\n"
    "passphrase, kms:KEY or pkcs11:URI" },
  { NULL, "id", "N", "the wrap's id, as list-wraps shows it" },
  { NULL, "new-passphrase-file", "FILE",
    "the passphrase of a new passphrase wrap (else asked twice on the\n"
    "terminal)" },
  { NULL, "new-passphrase-fd", "N",
    "read the new wrap's passphrase from file descriptor N" },
  { NULL, "control", "PATH",
    "the server's control socket (nbdkit ... control=PATH): after the\n"
    "change, make the server reload the header; an rbd: volume's server\n"
    "commits the change itself (it holds the image's lock)" },
  { "status", "control", "PATH",
    "the server's control socket (nbdkit ... control=PATH); required" },
  { "lock", "control", "PATH",
    "the server's control socket (nbdkit ... control=PATH); required" },
  { "unlock", "control", "PATH",
    "the server's control socket (nbdkit ... control=PATH); required" },
  { "reload", "control", "PATH",
    "the server's control socket (nbdkit ... control=PATH); required" },
  { "metrics", "control", "PATH",
    "the server's control socket (nbdkit ... control=PATH); required" },
  { NULL, "export", "NAME",
    "the export to act on, on a server with several (nbdinfo --list\n"
    "shows them)" },
  { "status", "export", "NAME",
    "only this export (default: every export of the server)" },
  { "metrics", "export", "NAME",
    "only this export's metrics (default: every export)" },
  /* rotate-dek */
  { "rotate-dek", "control", "PATH",
    "rotate online: the server (nbdkit ... control=PATH) re-encrypts while\n"
    "it serves, keymgr follows its progress" },
  { "rotate-dek", "hotzone", "SIZE", "bytes re-encrypted per crash-safe step" },
  { "rotate-dek", "rate", "MIB",
    "with --control: the rotation's rate limit in MiB/s (0: unlimited)" },
  { "rotate-dek", "detach", NULL,
    "with --control: return once the server runs the rotation" },
  { "rotate-dek", "pause", NULL,
    "with --control: pause the server's rotation (no key needed)" },
  { "rotate-dek", "resume", NULL,
    "with --control: resume the server's rotation (no key needed)" },
  { "rotate-dek", "drop-wrap", "ID",
    "remove wrap ID instead of re-making it for the new DEK (repeatable)" },
  /* shred, upgrade */
  { "shred", "yes", NULL, "do not ask for confirmation" },
  { "upgrade", "reseal", NULL,
    "write the seal sector again for this header (it was lost)" },
  { "upgrade", "yes", NULL,
    "use the block before the data for the seal even if it is not blank" },
  /* grants */
  { "grant", "grantee", "ARN", "the AWS principal the grant is for" },
  { "grant", "retiring-principal", "ARN",
    "a principal that may retire the grant" },
  { "grant", "reencrypt", NULL,
    "also allow ReEncryptFrom (the grantee may rewrap)" },
  { "grant", "token-file", "FILE",
    "write the grant's token to FILE (mode 0600; one grant only: choose\n"
    "the wrap with --wrap), for the plugin's kms-grant-token=+FILE" },
  { NULL, "wrap", "ID", "only the kms wrap ID (default: every kms wrap)" },
  { "grants", "all", NULL,
    "every grant on the keys, not only those naming this volume" },
  { "retire-grant", "grant-token", "+FILE",
    "retire the grant whose token is in FILE (as grant wrote it)" },
  /* rotate-dek and others: progress */
  { NULL, "quiet", NULL,
    "no progress (default: bytes, rate and ETA on stderr, redrawn on a\n"
    "terminal, else a line per whole percent; JSON lines with --json)" },
  /* the options many commands share */
  { NULL, "header", "FILE", "the volume's detached header" },
  { NULL, "ceph-conf", "FILE",
    "rbd: volumes: the cluster's ceph.conf (default: CEPH_CONF, then\n"
    "Ceph's search: /etc/ceph/ceph.conf, ~/.ceph/config, ./ceph.conf)" },
  { NULL, "ceph-id", "NAME",
    "rbd: volumes: the client id, without \"client.\" (default admin)" },
  { NULL, "ceph-keyring", "FILE",
    "rbd: volumes: the keyring (default: the one ceph.conf names)" },
  { NULL, "takeover", NULL,
    "rbd: volumes: break the image's exclusive lock held by another client\n"
    "(blocklisting it, so its late writes fail): only when its host is gone" },
  { NULL, "keyfile", "FILE", "unlock with this key file" },
  { NULL, "passphrase-file", "FILE",
    "read the passphrase from FILE (one trailing newline dropped); without\n"
    "it or --passphrase-fd, it is asked on the terminal" },
  { NULL, "passphrase-fd", "N", "read the passphrase from file descriptor N" },
  { NULL, "pin-file", "FILE", "read the PKCS#11 user PIN from FILE" },
  { NULL, "pin-fd", "N", "read the PKCS#11 user PIN from file descriptor N" },
  { NULL, "pkcs11-module", "PATH",
    "the PKCS#11 module, if the URI has no module-path" },
  { NULL, "kms-endpoint", "URL",
    "the KMS endpoint (default: AWS_ENDPOINT_URL_KMS, else the region's)" },
  { NULL, "kms-region", "REGION",
    "the KMS region (default: AWS_REGION, the profile's, the key ARN's)" },
  { NULL, "ca-bundle", "FILE",
    "CA certificates for the KMS endpoint (default: AWS_CA_BUNDLE, the\n"
    "system's)" },
  { NULL, "kms-grant-token", "+FILE|TOKEN",
    "a KMS grant token sent with every KMS call (a grant not yet propagated)" },
  { NULL, "unlock-wrap", "ID|TYPE",
    "unlock with this wrap id or type (file, passphrase, kms, pkcs11);\n"
    "repeatable, tried in order" },
  { NULL, "allow-costly-kdf", NULL,
    "accept passphrase KDF parameters over the unlock limit (1 GiB,\n"
    "10 passes): only for a wrap you made so" },
  { NULL, "pbkdf", "argon2id|scrypt",
    "the KDF of new passphrase wraps (argon2id)" },
  { NULL, "pbkdf-memory", "SIZE", "its memory (256M)" },
  { NULL, "pbkdf-time", "N", "its passes (4)" },
  { NULL, "pbkdf-parallel", "N", "its lanes (2)" },
  { NULL, "wait", "SECONDS",
    "wait up to SECONDS for the volume's locks held by another process\n"
    "(5; 0: fail at once), then exit 5" },
  { NULL, "json", NULL,
    "machine-readable output on stdout; a failure is an object\n"
    "{\"ok\":false,\"error\":...,\"exit\":N} there too" },
  { NULL, "audit-log", "FILE",
    "append a JSON line about this command to FILE (never key material)" },
  { NULL, "debug", NULL, "print debug messages" },
  { NULL, "help", NULL, "this help" },
};

/* The entry for option name of cmd, or -1. */
static int
find (const char *cmd, const char *name)
{
  int any = -1;

  for (size_t i = 0; i < ARRAY_SIZE (docs); i++)
    if (strcmp (docs[i].name, name) == 0) {
      if (docs[i].cmd && cmd && strcmp (docs[i].cmd, cmd) == 0)
        return (int) i;
      if (!docs[i].cmd && any < 0)
        any = (int) i;
    }
  return any;
}

bool
option_documented (const char *cmd, const char *name)
{
  return find (cmd, name) >= 0;
}

void
print_options (FILE *f, const char *cmd, const struct option *opts)
{
  fprintf (f, "\noptions:\n");
  for (size_t i = 0; opts[i].name; i++) {
    int d = find (cmd, opts[i].name);
    const char *arg = d >= 0 ? docs[d].arg : NULL;
    const char *text = d >= 0 ? docs[d].text : "(undocumented)";

    fprintf (f, "  --%s%s%s\n", opts[i].name, arg ? " " : "", arg ? arg : "");
    for (const char *p = text; *p;) {
      size_t n = strcspn (p, "\n");
      fprintf (f, "      %.*s\n", (int) n, p);
      p += n + (p[n] == '\n');
    }
  }
}
