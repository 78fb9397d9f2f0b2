using System.CommandLine;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using ManagedDisks.Daemon.Configuration;
using ManagedDisks.Keys;
using ManagedDisks.Keys.Audit;
using ManagedDisks.Keys.Vault;

namespace ManagedDisks.Daemon.Commands;

/// <summary>
/// <c>managed-disks vault [--config PATH] [--store NAME] key ...|grant|revoke</c>: administers a
/// software key store directly in its folder, so it works whether or not the daemon runs (the
/// daemon sees changes at its next key poll). Every change is recorded in the audit log, as
/// <c>admin:USER</c>, whether it succeeded, was denied or failed.
/// Exit codes: 0 done, 1 refused or failed (stderr says what to do), 2 the configuration is unusable.
/// </summary>
internal static class VaultCommand
{
    private sealed record Outcome(string Message, string? Version = null, string? Detail = null);

    private sealed record Context(Option<string?> Config, Option<string?> Store);

    public static Command Build(Option<string?> configOption)
    {
        var store = new Option<string?>("--store", "-s")
        {
            Description = "The [[key_store]] to administer; optional when the configuration declares exactly one",
            Recursive = true,
        };
        var c = new Context(configOption, store);

        var key = new Command("key", "Create, import, rotate, disable, delete and list keys")
        {
            Create(c), Import(c), Simple(c, "rotate", "Add a new version generated in the vault; it becomes the latest", "key.rotate", Rotate),
            Simple(c, "disable", "Disable a key: no identity may wrap or unwrap with it", "key.disable", Disable),
            Simple(c, "enable", "Enable a disabled key", "key.enable", Enable),
            Simple(c, "delete", "Soft-delete a key: recoverable until the vault's retention period ends", "key.delete", Delete),
            Simple(c, "recover", "Recover a soft-deleted key", "key.recover", Recover),
            Simple(c, "purge", "Remove a deleted key for good (refused while purge protection is on)", "key.purge", Purge),
            SetExpiry(c), List(c), Show(c),
        };
        return new Command("vault", "Administer a software key store (works whether or not the daemon runs)")
        {
            store, key, Grant(c), Revoke(c),
        };
    }

    // ---- commands ----

    private static Argument<string> KeyName() => new("NAME") { Description = "The key's name" };

    private static Command Create(Context c)
    {
        var name = KeyName();
        var size = new Option<int>("--size") { Description = "RSA modulus size in bits", DefaultValueFactory = _ => 3072 };
        size.AcceptOnlyFromAmong("2048", "3072", "4096");
        var command = new Command("create", "Generate a new RSA key in the vault") { name, size };
        command.SetAction(parse => RunChange(parse, c, "key.create", parse.GetValue(name)!, vault =>
        {
            var info = vault.CreateKey(parse.GetValue(name)!, parse.GetValue(size));
            return new Outcome($"created key '{info.Name}' in key store '{vault.Name}': RSA-{info.Bits}, version {info.LatestVersion}",
                info.LatestVersion, $"RSA-{info.Bits} generated");
        }));
        return command;
    }

    private static Command Import(Context c)
    {
        var name = KeyName();
        var pem = new Option<string>("--pem") { Description = "PEM file: RSA PRIVATE KEY (PKCS#1), PRIVATE KEY (PKCS#8) or ENCRYPTED PRIVATE KEY", Required = true };
        var passphraseFile = new Option<string?>("--passphrase-file") { Description = "File holding the passphrase of an encrypted PKCS#8 PEM (a trailing newline is ignored)" };
        var command = new Command("import", "Import an RSA private key from PEM: a new key, or a new version of an existing key") { name, pem, passphraseFile };
        command.SetAction(parse => RunChange(parse, c, "key.import", parse.GetValue(name)!, vault =>
        {
            string keyName = parse.GetValue(name)!;
            byte[] pemBytes = [], passphrase = [];
            char[] pemChars = [];
            try
            {
                pemBytes = ReadInput(parse.GetValue(pem)!, "--pem");
                passphrase = parse.GetValue(passphraseFile) is { } path ? ReadPassphrase(path) : [];
                pemChars = Encoding.UTF8.GetChars(pemBytes);
                var info = vault.ImportKey(keyName, pemChars, passphrase);
                string what = info.Versions.Count == 1 ? $"imported key '{info.Name}'" : $"imported a new version of key '{info.Name}'";
                return new Outcome($"{what} into key store '{vault.Name}': RSA-{info.Bits}, version {info.LatestVersion}",
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

    private static Command Simple(Context c, string verb, string description, string operation, Func<SoftwareVault, string, Outcome> change)
    {
        var name = KeyName();
        var command = new Command(verb, description) { name };
        command.SetAction(parse => RunChange(parse, c, operation, parse.GetValue(name)!, vault => change(vault, parse.GetValue(name)!)));
        return command;
    }

    private static Outcome Rotate(SoftwareVault vault, string name)
    {
        var info = vault.RotateKey(name);
        return new Outcome($"rotated key '{name}': version {info.LatestVersion} (RSA-{info.Bits}) is now the latest of {info.Versions.Count}; " +
                           "disks in encryption sets with auto_rotate re-wrap their DEK at the next rotation check", info.LatestVersion, $"RSA-{info.Bits} generated");
    }

    private static Outcome Disable(SoftwareVault vault, string name)
    {
        vault.DisableKey(name);
        return new Outcome($"disabled key '{name}': no identity may wrap or unwrap with it; the daemon acts on this at its next key poll");
    }

    private static Outcome Enable(SoftwareVault vault, string name)
    {
        var info = vault.EnableKey(name);
        return new Outcome($"enabled key '{name}' (state now: {StateName(info.State)})");
    }

    private static Outcome Delete(SoftwareVault vault, string name)
    {
        var info = vault.DeleteKey(name);
        return new Outcome($"deleted key '{name}': recoverable with `key recover {name}` until {Date(info.PurgeAfter)}");
    }

    private static Outcome Recover(SoftwareVault vault, string name)
    {
        var info = vault.RecoverKey(name);
        return new Outcome($"recovered key '{name}' (state now: {StateName(info.State)})");
    }

    private static Outcome Purge(SoftwareVault vault, string name)
    {
        vault.PurgeKey(name);
        return new Outcome($"purged key '{name}' and its private keys; disks wrapped only by it can no longer be opened");
    }

    private static Command SetExpiry(Context c)
    {
        var name = KeyName();
        var expires = new Option<string?>("--expires") { Description = "ISO 8601 date/time after which the key is expired (UTC unless an offset is given), or 'none'" };
        var notBefore = new Option<string?>("--not-before") { Description = "ISO 8601 date/time before which the key is not yet valid, or 'none'" };
        var command = new Command("set-expiry", "Set or clear a key's expiry and not-before dates") { name, expires, notBefore };
        command.SetAction(parse =>
        {
            string? expiresText = parse.GetValue(expires), notBeforeText = parse.GetValue(notBefore);
            if (expiresText is null && notBeforeText is null)
                return Fail("set-expiry: give --expires DATE and/or --not-before DATE (ISO 8601, e.g. 2030-01-31T00:00:00Z, or 'none' to clear)");
            if (!TryParseDate(expiresText, "--expires", out var expiresChange, out string? error) ||
                !TryParseDate(notBeforeText, "--not-before", out var notBeforeChange, out error))
                return Fail(error!);
            return RunChange(parse, c, "key.set-expiry", parse.GetValue(name)!, vault =>
            {
                var info = vault.SetValidity(parse.GetValue(name)!, notBeforeChange, expiresChange);
                return new Outcome($"key '{info.Name}': not before {Date(info.NotBefore)}, expires {Date(info.Expires)} (state now: {StateName(info.State)})",
                    Detail: $"not_before={Date(info.NotBefore)} expires={Date(info.Expires)}");
            });
        });
        return command;
    }

    private static Command List(Context c)
    {
        var json = new Option<bool>("--json") { Description = "Print JSON for scripts" };
        var command = new Command("list", "List the keys, deleted ones included") { json };
        command.SetAction(parse => RunRead(parse, c, vault =>
        {
            var keys = vault.ListKeys();
            if (parse.GetValue(json)) return ToJson(new JsonArray(keys.Select(k => (JsonNode)Describe(k)).ToArray()));
            if (keys.Count == 0) return $"key store '{vault.Name}' holds no keys; create one with `managed-disks vault key create NAME`";
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
        var command = new Command("show", "Show a key: state, versions, dates and grants") { name, json };
        command.SetAction(parse => RunRead(parse, c, vault =>
        {
            string keyName = parse.GetValue(name)!;
            var info = vault.GetKey(keyName) ?? throw new KeyStoreException(
                $"key store '{vault.Name}' has no key '{keyName}'; list the keys with `managed-disks vault key list`");
            if (parse.GetValue(json)) return ToJson(Describe(info));
            var lines = new List<string>
            {
                $"key             {info.Name}",
                $"key store       {vault.Name}",
                $"state           {StateName(info.State)}",
                $"bits            {info.Bits}",
                $"latest version  {info.LatestVersion}",
                $"not before      {Date(info.NotBefore)}",
                $"expires         {Date(info.Expires)}",
            };
            if (info.DeletedOn is not null) lines.Add($"deleted         {Date(info.DeletedOn)} (recoverable until {Date(info.PurgeAfter)})");
            lines.AddRange(info.Versions.Select(v => $"version         {v.Version}  created {Date(v.Created)}"));
            lines.AddRange(info.Grants.Count == 0
                ? ["grants          none"]
                : info.Grants.Select(g => $"grant           {g.Key}: {KeyOperationNames.Format(g.Value)}"));
            return string.Join('\n', lines);
        }));
        return command;
    }

    private static Command Grant(Context c)
    {
        var key = new Option<string>("--key") { Description = "The key's name", Required = true };
        var identity = new Option<string>("--identity") { Description = "Who may use the key, e.g. an encryption set's identity (managed-disks set show)", Required = true };
        var ops = new Option<string>("--ops") { Description = $"Comma-separated operations: {KeyOperationNames.Valid}", Required = true };
        var command = new Command("grant", "Let an identity use a key (replaces that identity's operations on the key)") { key, identity, ops };
        command.SetAction(parse =>
        {
            if (!KeyOperationNames.TryParse(parse.GetValue(ops)!, out var operations, out string? error))
                return Fail($"--ops: {error}");
            string keyName = parse.GetValue(key)!, who = parse.GetValue(identity)!;
            string detail = $"identity={who} ops={KeyOperationNames.Format(operations)}";
            return RunChange(parse, c, "grant", keyName, vault =>
            {
                vault.Grant(keyName, who, operations);
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
            return RunChange(parse, c, "revoke", keyName, vault =>
            {
                vault.Revoke(keyName, who);
                return new Outcome($"revoked the grant of '{who}' on key '{keyName}'; disks that use it lose access when the daemon next polls (after revoke_grace)",
                    Detail: $"identity={who}");
            }, $"identity={who}");
        });
        return command;
    }

    // ---- plumbing ----

    /// <summary>Opens the store, makes one change and audits it: ok, denied or the error.</summary>
    private static int RunChange(ParseResult parse, Context c, string operation, string keyName, Func<SoftwareVault, Outcome> change, string? detail = null)
    {
        if (!TryFindStore(parse, c, out var settings, out var store, out int exitCode)) return exitCode;
        var record = new AuditRecord("admin:" + Environment.UserName, operation, "ok", store.Name, keyName, Detail: detail);
        Outcome outcome;
        try
        {
            using var vault = Open(store);
            outcome = change(vault);
        }
        catch (Exception e) when (e is KeyStoreException or IOException or UnauthorizedAccessException)
        {
            bool denied = VaultRefusal.IsRefusal(e);
            string? auditProblem = TryAudit(settings, record with { Result = denied ? "denied" : $"error: {e.Message}", Detail = denied ? e.Message : detail });
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

    private static int RunRead(ParseResult parse, Context c, Func<SoftwareVault, string> read)
    {
        if (!TryFindStore(parse, c, out _, out var store, out int exitCode)) return exitCode;
        try
        {
            using var vault = Open(store);
            Console.WriteLine(read(vault));
            return 0;
        }
        catch (Exception e) when (e is KeyStoreException or IOException or UnauthorizedAccessException)
        {
            return Fail(e.Message);
        }
    }

    private static SoftwareVault Open(KeyStoreSettings store) => SoftwareVault.Open(store.Name, store.Path, store.MasterKeyFile);

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

        var stores = settings.KeyStores;
        string declared = stores.Count == 0 ? "" : $"it declares: {string.Join(", ", stores.Select(s => s.Name))}";
        string? wanted = parse.GetValue(c.Store);
        var found = wanted is null ? (stores.Count == 1 ? stores[0] : null) : stores.FirstOrDefault(s => s.Name == wanted);
        if (found is null)
        {
            exitCode = Fail(stores.Count == 0
                ? $"{settings.Source} declares no [[key_store]]; add one (see disks.toml.example), e.g.\n  [[key_store]]\n  name = \"vault1\"\n  type = \"software\""
                : wanted is null
                    ? $"{settings.Source} declares several key stores; choose one with --store NAME ({declared})"
                    : $"no key store named '{wanted}' in {settings.Source}; {declared}");
            return false;
        }
        if (found.Type != "software")
        {
            exitCode = Fail($"key store '{found.Name}' is of type '{found.Type}'; `vault` administers software key stores only");
            return false;
        }
        store = found;
        exitCode = 0;
        return true;
    }

    /// <summary>Appends to the audit log; returns what went wrong, or null.</summary>
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

    /// <summary>The passphrase bytes as given, without the trailing newline an editor or echo adds.</summary>
    private static byte[] ReadPassphrase(string path)
    {
        byte[] bytes = ReadInput(path, "--passphrase-file");
        int length = bytes.AsSpan().TrimEnd("\r\n"u8).Length;
        byte[] passphrase = bytes[..length];
        CryptographicOperations.ZeroMemory(bytes);
        if (passphrase.Length == 0)
            throw new KeyStoreException($"--passphrase-file: {Path.GetFullPath(path)} is empty; put the PEM's passphrase in it");
        return passphrase;
    }

    private static bool TryParseDate(string? text, string option, out DateChange change, out string? error)
    {
        change = DateChange.Keep;
        error = null;
        if (text is null) return true;
        if (text.Equals("none", StringComparison.OrdinalIgnoreCase))
        {
            change = DateChange.To(null);
            return true;
        }
        if (DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var date))
        {
            change = DateChange.To(date);
            return true;
        }
        error = $"{option}: '{text}' is not an ISO 8601 date like 2030-01-31 or 2030-01-31T12:00:00Z (or 'none' to clear it)";
        return false;
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
        ["deleted_on"] = k.DeletedOn?.ToString("O", CultureInfo.InvariantCulture),
        ["purge_after"] = k.PurgeAfter?.ToString("O", CultureInfo.InvariantCulture),
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
        _ => state.ToString().ToLowerInvariant(),
    };

    private static string Date(DateTimeOffset? date) => date?.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture) ?? "-";

    private static string Grants(KeyInfo k) =>
        k.Grants.Count == 0 ? "-" : string.Join(" ", k.Grants.OrderBy(g => g.Key, StringComparer.Ordinal).Select(g => $"{g.Key}={KeyOperationNames.Format(g.Value)}"));
}
