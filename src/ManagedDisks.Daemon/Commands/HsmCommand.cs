using System.CommandLine;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using ManagedDisks.Daemon.Configuration;
using ManagedDisks.Daemon.Hosting;
using ManagedDisks.Keys;
using ManagedDisks.Keys.Audit;
using ManagedDisks.Keys.Pkcs11;
using ManagedDisks.Keys.Vault;

namespace ManagedDisks.Daemon.Commands;

/// <summary>
/// <c>managed-disks hsm [--config PATH] [--store NAME] key ...|grant|revoke</c>: administers a
/// type = "pkcs11" key store: keys are made and imported in the token itself (the private key
/// never leaves it), grants are kept in the store's grants file (docs/PKCS11.md). Works whether
/// or not the daemon runs. Every change is audited as <c>admin:USER</c>, ok, denied or failed.
/// Exit codes: 0 done, 1 refused or failed (stderr says what to do), 2 the configuration is unusable.
/// </summary>
internal static class HsmCommand
{
    private sealed record Outcome(string Message, string? Version = null, string? Detail = null);

    private sealed record Context(Option<string?> Config, Option<string?> Store);

    public static Command Build(Option<string?> configOption)
    {
        var store = new Option<string?>("--store", "-s")
        {
            Description = "The type = \"pkcs11\" [[key_store]] to administer; optional when the configuration declares exactly one",
            Recursive = true,
        };
        var c = new Context(configOption, store);
        var key = new Command("key", "Create, import, rotate, disable and list keys in the HSM token")
        {
            Create(c), Import(c),
            Simple(c, "rotate", "Generate a new version in the token (the next CKA_ID); it becomes the latest", "key.rotate", Rotate),
            Simple(c, "disable", "Set CKA_DECRYPT false on every version: the token refuses to unwrap with the key", "key.disable", Disable),
            Simple(c, "enable", "Set CKA_DECRYPT true on every version", "key.enable", Enable),
            List(c), Show(c),
        };
        return new Command("hsm", "Administer a PKCS#11 HSM key store (works whether or not the daemon runs)")
        {
            store, key, Grant(c), Revoke(c),
        };
    }

    private static Argument<string> KeyName() => new("NAME") { Description = "The key's name (CKA_LABEL in the token)" };

    private static Command Create(Context c)
    {
        var name = KeyName();
        var size = new Option<int>("--size") { Description = "RSA modulus size in bits", DefaultValueFactory = _ => 3072 };
        size.AcceptOnlyFromAmong("2048", "3072", "4096");
        var command = new Command("create", "Generate an RSA key pair in the token (C_GenerateKeyPair; sensitive, not extractable)") { name, size };
        command.SetAction(parse => RunChange(parse, c, "key.create", parse.GetValue(name)!, hsm =>
        {
            var info = hsm.CreateKey(parse.GetValue(name)!, parse.GetValue(size));
            return new Outcome($"created key '{info.Name}' in key store '{hsm.Name}': RSA-{info.Bits}, version {info.LatestVersion}",
                info.LatestVersion, $"RSA-{info.Bits} generated in the token");
        }));
        return command;
    }

    private static Command Import(Context c)
    {
        var name = KeyName();
        var pem = new Option<string>("--pem") { Description = "PEM file: RSA PRIVATE KEY (PKCS#1), PRIVATE KEY (PKCS#8) or ENCRYPTED PRIVATE KEY", Required = true };
        var passphraseFile = new Option<string?>("--passphrase-file") { Description = "File holding the passphrase of an encrypted PKCS#8 PEM (a trailing newline is ignored)" };
        var command = new Command("import", "Import an RSA private key into the token (C_CreateObject; sensitive): a new key, or a new version") { name, pem, passphraseFile };
        command.SetAction(parse => RunChange(parse, c, "key.import", parse.GetValue(name)!, hsm =>
        {
            byte[] pemBytes = [], passphrase = [];
            char[] pemChars = [];
            try
            {
                pemBytes = ReadInput(parse.GetValue(pem)!, "--pem");
                if (parse.GetValue(passphraseFile) is { } path)
                {
                    byte[] raw = ReadInput(path, "--passphrase-file");
                    passphrase = raw[..raw.AsSpan().TrimEnd("\r\n"u8).Length];
                    CryptographicOperations.ZeroMemory(raw);
                }
                pemChars = Encoding.UTF8.GetChars(pemBytes);
                var info = hsm.ImportKey(parse.GetValue(name)!, pemChars, passphrase);
                return new Outcome($"imported {(info.Versions.Count == 1 ? "key" : "a new version of key")} '{info.Name}' into key store '{hsm.Name}': RSA-{info.Bits}, version {info.LatestVersion}",
                    info.LatestVersion, $"RSA-{info.Bits} imported from {Path.GetFullPath(parse.GetValue(pem)!)}");
            }
            finally
            {
                CryptographicOperations.ZeroMemory(pemBytes);
                CryptographicOperations.ZeroMemory(passphrase);
                Array.Clear(pemChars);
            }
        }));
        return command;
    }

    private static Command Simple(Context c, string verb, string description, string operation, Func<Pkcs11Store, string, Outcome> change)
    {
        var name = KeyName();
        var command = new Command(verb, description) { name };
        command.SetAction(parse => RunChange(parse, c, operation, parse.GetValue(name)!, hsm => change(hsm, parse.GetValue(name)!)));
        return command;
    }

    private static Outcome Rotate(Pkcs11Store hsm, string name)
    {
        var info = hsm.CreateKey(name, rotate: true);
        return new Outcome($"rotated key '{name}': version {info.LatestVersion} (RSA-{info.Bits}) is now the latest of {info.Versions.Count}",
            info.LatestVersion, $"RSA-{info.Bits} generated in the token");
    }

    private static Outcome Disable(Pkcs11Store hsm, string name)
    {
        hsm.SetEnabled(name, false);
        return new Outcome($"disabled key '{name}' (CKA_DECRYPT false): the token refuses to unwrap with it; the daemon acts on this at its next key poll");
    }

    private static Outcome Enable(Pkcs11Store hsm, string name)
    {
        var info = hsm.SetEnabled(name, true);
        return new Outcome($"enabled key '{name}' (state now: {StateName(info.State)})");
    }

    private static Command List(Context c)
    {
        var json = new Option<bool>("--json") { Description = "Print JSON for scripts" };
        var command = new Command("list", "List the keys in the token (RSA private keys with a CKA_ID, by label)") { json };
        command.SetAction(parse => RunRead(parse, c, hsm =>
        {
            var keys = hsm.ListKeys();
            if (parse.GetValue(json)) return ToJson(new JsonArray(keys.Select(k => (JsonNode)Describe(k)).ToArray()));
            if (keys.Count == 0) return $"key store '{hsm.Name}' holds no keys; create one with `managed-disks hsm key create NAME`";
            var rows = keys.Select(k => new[]
            {
                k.Name, StateName(k.State), k.Bits.ToString(CultureInfo.InvariantCulture), k.LatestVersion,
                k.Versions.Count.ToString(CultureInfo.InvariantCulture), Date(k.Expires), Grants(k),
            }).Prepend(["NAME", "STATE", "BITS", "LATEST VERSION", "VERSIONS", "EXPIRES", "GRANTS"]).ToList();
            int[] widths = Enumerable.Range(0, rows[0].Length).Select(i => rows.Max(r => r[i].Length)).ToArray();
            return string.Join('\n', rows.Select(r => string.Join("  ", r.Select((cell, i) => cell.PadRight(widths[i]))).TrimEnd()));
        }));
        return command;
    }

    private static Command Show(Context c)
    {
        var name = KeyName();
        var json = new Option<bool>("--json") { Description = "Print JSON for scripts" };
        var command = new Command("show", "Show a key: state, versions (CKA_IDs), dates and grants") { name, json };
        command.SetAction(parse => RunRead(parse, c, hsm =>
        {
            string keyName = parse.GetValue(name)!;
            var info = hsm.GetKey(keyName) ?? throw new KeyStoreException($"key store '{hsm.Name}' has no key '{keyName}'; list the keys with `managed-disks hsm key list`");
            if (parse.GetValue(json)) return ToJson(Describe(info));
            var lines = new List<string>
            {
                $"key             {info.Name}", $"key store       {hsm.Name}", $"state           {StateName(info.State)}", $"bits            {info.Bits}",
                $"latest version  {info.LatestVersion}", $"not before      {Date(info.NotBefore)}", $"expires         {Date(info.Expires)}",
            };
            lines.AddRange(info.Versions.Select(v => $"version         {v.Version}  created {Date(v.Created)}"));
            lines.AddRange(info.Grants.Count == 0 ? ["grants          none"] : info.Grants.Select(g => $"grant           {g.Key}: {KeyOperationNames.Format(g.Value)}"));
            return string.Join('\n', lines);
        }));
        return command;
    }

    private static Command Grant(Context c)
    {
        var key = new Option<string>("--key") { Description = "The key's name", Required = true };
        var identity = new Option<string>("--identity") { Description = "Who may use the key, e.g. an encryption set's identity (managed-disks set show)", Required = true };
        var ops = new Option<string>("--ops") { Description = $"Comma-separated operations: {KeyOperationNames.Valid}", Required = true };
        var command = new Command("grant", "Let an identity use a key (kept in the store's grants file; replaces that identity's operations)") { key, identity, ops };
        command.SetAction(parse =>
        {
            if (!KeyOperationNames.TryParse(parse.GetValue(ops)!, out var operations, out string? error))
                return Fail($"--ops: {error}");
            string keyName = parse.GetValue(key)!, who = parse.GetValue(identity)!;
            string detail = $"identity={who} ops={KeyOperationNames.Format(operations)}";
            return RunChange(parse, c, "grant", keyName, hsm =>
            {
                hsm.Grant(keyName, who, operations);
                return new Outcome($"granted '{who}' {KeyOperationNames.Format(operations)} on key '{keyName}'", Detail: detail);
            }, detail);
        });
        return command;
    }

    private static Command Revoke(Context c)
    {
        var key = new Option<string>("--key") { Description = "The key's name", Required = true };
        var identity = new Option<string>("--identity") { Description = "The identity whose grant is removed", Required = true };
        var command = new Command("revoke", "Remove an identity's grant on a key") { key, identity };
        command.SetAction(parse =>
        {
            string keyName = parse.GetValue(key)!, who = parse.GetValue(identity)!;
            return RunChange(parse, c, "revoke", keyName, hsm =>
            {
                hsm.Revoke(keyName, who);
                return new Outcome($"revoked the grant of '{who}' on key '{keyName}'; disks that use it lose access when the daemon next polls", Detail: $"identity={who}");
            }, $"identity={who}");
        });
        return command;
    }

    // ---- plumbing (as VaultCommand) ----

    private static int RunChange(ParseResult parse, Context c, string operation, string keyName, Func<Pkcs11Store, Outcome> change, string? detail = null)
    {
        if (!TryFindStore(parse, c, out var settings, out var store, out int exitCode)) return exitCode;
        var record = new AuditRecord("admin:" + Environment.UserName, operation, "ok", store.Name, keyName, Detail: detail);
        Outcome outcome;
        try
        {
            using var hsm = Pkcs11Store.Open(store.Name, KeyStoreFactory.Pkcs11Options(store));
            outcome = change(hsm);
        }
        catch (Exception e) when (e is KeyStoreException or Pkcs11Problem or IOException or UnauthorizedAccessException)
        {
            string? auditProblem = TryAudit(settings, record with { Result = $"error: {e.Message}" });
            Console.Error.WriteLine($"managed-disks: {e.Message}");
            if (auditProblem is not null) Console.Error.WriteLine($"managed-disks: {auditProblem}");
            return 1;
        }
        string? problem = TryAudit(settings, record with { KeyVersion = outcome.Version, Detail = outcome.Detail ?? detail });
        Console.WriteLine(outcome.Message);
        if (problem is null) return 0;
        Console.Error.WriteLine($"managed-disks: the change was made, but {problem}");
        return 1;
    }

    private static int RunRead(ParseResult parse, Context c, Func<Pkcs11Store, string> read)
    {
        if (!TryFindStore(parse, c, out _, out var store, out int exitCode)) return exitCode;
        try
        {
            using var hsm = Pkcs11Store.Open(store.Name, KeyStoreFactory.Pkcs11Options(store));
            Console.WriteLine(read(hsm));
            return 0;
        }
        catch (Exception e) when (e is KeyStoreException or Pkcs11Problem or IOException or UnauthorizedAccessException)
        {
            return Fail(e.Message);
        }
    }

    private static bool TryFindStore(ParseResult parse, Context c, out DaemonSettings settings, out KeyStoreSettings store, out int exitCode)
    {
        settings = null!;
        store = null!;
        string? configPath = parse.GetValue(c.Config);
        try
        {
            settings = configPath is null ? ConfigLoader.LoadEmbeddedDefault(Environment.CurrentDirectory) : ConfigLoader.LoadFile(configPath);
        }
        catch (ConfigException e)
        {
            exitCode = Fail(e.Message, 2);
            return false;
        }
        var stores = settings.KeyStores.Where(s => s.Type == Pkcs11Store.TypeName).ToList();
        string? wanted = parse.GetValue(c.Store);
        var found = wanted is null ? (stores.Count == 1 ? stores[0] : null) : settings.KeyStores.FirstOrDefault(s => s.Name == wanted);
        string declared = $"its pkcs11 stores: {(stores.Count == 0 ? "none" : string.Join(", ", stores.Select(s => s.Name)))}";
        if (found is null)
        {
            exitCode = Fail(stores.Count == 0
                ? $"{settings.Source} declares no [[key_store]] with type = \"pkcs11\"; add one (see disks.toml.example and docs/PKCS11.md)"
                : wanted is null
                    ? $"{settings.Source} declares several pkcs11 key stores; choose one with --store NAME ({declared})"
                    : $"no key store named '{wanted}' in {settings.Source}; {declared}");
            return false;
        }
        if (found.Type != Pkcs11Store.TypeName)
        {
            exitCode = Fail($"key store '{found.Name}' is of type '{found.Type}'; `hsm` administers pkcs11 key stores only (use `managed-disks vault` for software ones)");
            return false;
        }
        store = found;
        exitCode = 0;
        return true;
    }

    private static string? TryAudit(DaemonSettings settings, AuditRecord record)
    {
        try
        {
            AuditLog.Open(settings.AuditLog).Append(record);
            return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or KeyStoreException)
        {
            return $"the audit log {settings.AuditLog} could not be written ({e.Message}); check that it is writable by this user";
        }
    }

    private static int Fail(string message, int exitCode = 1)
    {
        Console.Error.WriteLine($"managed-disks: {message}");
        return exitCode;
    }

    private static byte[] ReadInput(string path, string option)
    {
        try { return File.ReadAllBytes(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new KeyStoreException($"{option}: cannot read {Path.GetFullPath(path)}: {e.Message}");
        }
    }

    private static JsonObject Describe(KeyInfo k) => new()
    {
        ["name"] = k.Name,
        ["state"] = StateName(k.State),
        ["bits"] = k.Bits,
        ["latest_version"] = k.LatestVersion,
        ["versions"] = new JsonArray(k.Versions.Select(v => (JsonNode)new JsonObject
        {
            ["version"] = v.Version,
            ["created"] = v.Created.ToString("O", CultureInfo.InvariantCulture),
        }).ToArray()),
        ["not_before"] = k.NotBefore?.ToString("O", CultureInfo.InvariantCulture),
        ["expires"] = k.Expires?.ToString("O", CultureInfo.InvariantCulture),
        ["grants"] = new JsonObject(k.Grants.OrderBy(g => g.Key, StringComparer.Ordinal).Select(g =>
            KeyValuePair.Create(g.Key, (JsonNode?)new JsonArray(KeyOperationNames.ToNames(g.Value).Select(n => (JsonNode)n).ToArray())))),
    };

    private static string ToJson(JsonNode node) => node.ToJsonString(new JsonSerializerOptions
    {
        WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    });

    private static string StateName(KeyState state) => state switch
    {
        KeyState.NotYetValid => "not_yet_valid",
        KeyState.NotFound => "not_found",
        KeyState.AccessRevoked => "access_revoked",
        _ => state.ToString().ToLowerInvariant(),
    };

    private static string Date(DateTimeOffset? date) => date?.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture) ?? "-";

    private static string Grants(KeyInfo k) =>
        k.Grants.Count == 0 ? "-" : string.Join(" ", k.Grants.OrderBy(g => g.Key, StringComparer.Ordinal).Select(g => $"{g.Key}={KeyOperationNames.Format(g.Value)}"));
}
