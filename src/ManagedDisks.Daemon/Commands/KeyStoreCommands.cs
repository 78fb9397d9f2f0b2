using System.CommandLine;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using ManagedDisks.Daemon.Configuration;
using ManagedDisks.Keys;
using ManagedDisks.Keys.Audit;
using ManagedDisks.Keys.Pkcs11;
using ManagedDisks.Keys.Vault;

namespace ManagedDisks.Daemon.Commands;

/// <summary>What a change to a key store did: the message printed, and the key version and detail audited.</summary>
internal sealed record KeyStoreOutcome(string Message, string? Version = null, string? Detail = null);

/// <summary>Helpers shared by <see cref="VaultCommand"/> and <see cref="HsmCommand"/> that do not depend on the store.</summary>
internal static class KeyStoreCommands
{
    public static int Fail(string message, int exitCode = 1)
    {
        Console.Error.WriteLine($"managed-disks: {message}");
        return exitCode;
    }

    public static byte[] ReadInput(string path, string option)
    {
        try { return File.ReadAllBytes(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new KeyStoreException($"{option}: cannot read {Path.GetFullPath(path)}: {e.Message}");
        }
    }

    public static string StateName(KeyState state) => state switch
    {
        KeyState.NotYetValid => "not_yet_valid",
        KeyState.NotFound => "not_found",
        KeyState.AccessRevoked => "access_revoked",
        _ => state.ToString().ToLowerInvariant(),
    };

    public static string Date(DateTimeOffset? date) => date?.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture) ?? "-";
}

/// <summary>
/// The subcommands <c>managed-disks vault</c> and <c>managed-disks hsm</c> share (key create, import,
/// list, show; grant, revoke) and their plumbing: find the [[key_store]] in the configuration, open
/// it, make one change and audit it as <c>admin:USER</c> (ok, denied or the error).
/// </summary>
/// <param name="CommandName">The command, for messages: "vault" or "hsm".</param>
/// <param name="StoreType">The [[key_store]] type the command administers: "software" or "pkcs11".</param>
/// <param name="Config">The global --config option.</param>
/// <param name="Store">The command's --store option.</param>
/// <param name="KeyNameDescription">Help for the NAME argument.</param>
/// <param name="Open">Opens the store a [[key_store]] declares.</param>
/// <param name="Find">
/// Picks the [[key_store]] to administer from the configuration and --store (null: the only one);
/// null with the message to print when there is none to pick. Its type is checked afterwards.
/// </param>
/// <param name="WrongTypeHint">Appended to the message for a store of another type.</param>
/// <param name="DescribesDeletion">Whether --json output has deleted_on and purge_after (the store soft-deletes keys).</param>
internal sealed record KeyStoreCommands<TStore>(
    string CommandName,
    string StoreType,
    Option<string?> Config,
    Option<string?> Store,
    string KeyNameDescription,
    Func<KeyStoreSettings, TStore> Open,
    KeyStoreCommands<TStore>.FindStore Find,
    string WrongTypeHint = "",
    bool DescribesDeletion = false)
    where TStore : IKeyStoreAdmin
{
    public delegate KeyStoreSettings? FindStore(DaemonSettings settings, string? wanted, out string error);

    public Argument<string> KeyName() => new("NAME") { Description = KeyNameDescription };

    public Command Create(string description, string generated)
    {
        var name = KeyName();
        var size = new Option<int>("--size") { Description = "RSA modulus size in bits", DefaultValueFactory = _ => 3072 };
        size.AcceptOnlyFromAmong("2048", "3072", "4096");
        var command = new Command("create", description) { name, size };
        command.SetAction(parse => RunChange(parse, "key.create", parse.GetValue(name)!, store =>
        {
            var info = store.CreateKey(parse.GetValue(name)!, parse.GetValue(size));
            return new KeyStoreOutcome($"created key '{info.Name}' in key store '{store.Name}': RSA-{info.Bits}, version {info.LatestVersion}",
                info.LatestVersion, $"RSA-{info.Bits} {generated}");
        }));
        return command;
    }

    /// <param name="description">The command's help.</param>
    /// <param name="refuseEmptyPassphrase">Whether an empty --passphrase-file is refused rather than used as an empty passphrase.</param>
    public Command Import(string description, bool refuseEmptyPassphrase)
    {
        var name = KeyName();
        var pem = new Option<string>("--pem") { Description = "PEM file: RSA PRIVATE KEY (PKCS#1), PRIVATE KEY (PKCS#8) or ENCRYPTED PRIVATE KEY", Required = true };
        var passphraseFile = new Option<string?>("--passphrase-file") { Description = "File holding the passphrase of an encrypted PKCS#8 PEM (a trailing newline is ignored)" };
        var command = new Command("import", description) { name, pem, passphraseFile };
        command.SetAction(parse => RunChange(parse, "key.import", parse.GetValue(name)!, store =>
        {
            byte[] pemBytes = [], passphrase = [];
            char[] pemChars = [];
            try
            {
                pemBytes = KeyStoreCommands.ReadInput(parse.GetValue(pem)!, "--pem");
                if (parse.GetValue(passphraseFile) is { } path) passphrase = ReadPassphrase(path, refuseEmptyPassphrase);
                pemChars = Encoding.UTF8.GetChars(pemBytes);
                var info = store.ImportKey(parse.GetValue(name)!, pemChars, passphrase);
                return new KeyStoreOutcome($"imported {(info.Versions.Count == 1 ? "key" : "a new version of key")} '{info.Name}' into key store '{store.Name}': RSA-{info.Bits}, version {info.LatestVersion}",
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

    /// <summary>A command that takes a key's NAME and makes one change to it.</summary>
    public Command Simple(string verb, string description, string operation, Func<TStore, string, KeyStoreOutcome> change)
    {
        var name = KeyName();
        var command = new Command(verb, description) { name };
        command.SetAction(parse => RunChange(parse, operation, parse.GetValue(name)!, store => change(store, parse.GetValue(name)!)));
        return command;
    }

    public Command List(string description)
    {
        var json = new Option<bool>("--json") { Description = "Print JSON for scripts" };
        var command = new Command("list", description) { json };
        command.SetAction(parse => RunRead(parse, store =>
        {
            var keys = store.ListKeys();
            if (parse.GetValue(json)) return ToJson(new JsonArray(keys.Select(k => (JsonNode)Describe(k)).ToArray()));
            if (keys.Count == 0) return $"key store '{store.Name}' holds no keys; create one with `managed-disks {CommandName} key create NAME`";
            var rows = keys.Select(k => new[]
            {
                k.Name, KeyStoreCommands.StateName(k.State), k.Bits.ToString(CultureInfo.InvariantCulture), k.LatestVersion,
                k.Versions.Count.ToString(CultureInfo.InvariantCulture), KeyStoreCommands.Date(k.Expires), Grants(k),
            }).Prepend(["NAME", "STATE", "BITS", "LATEST VERSION", "VERSIONS", "EXPIRES", "GRANTS"]).ToList();
            int[] widths = Enumerable.Range(0, rows[0].Length).Select(i => rows.Max(r => r[i].Length)).ToArray();
            return string.Join('\n', rows.Select(r => string.Join("  ", r.Select((cell, i) => cell.PadRight(widths[i]))).TrimEnd()));
        }));
        return command;
    }

    public Command Show(string description)
    {
        var name = KeyName();
        var json = new Option<bool>("--json") { Description = "Print JSON for scripts" };
        var command = new Command("show", description) { name, json };
        command.SetAction(parse => RunRead(parse, store =>
        {
            string keyName = parse.GetValue(name)!;
            var info = store.GetKey(keyName) ?? throw new KeyStoreException(
                $"key store '{store.Name}' has no key '{keyName}'; list the keys with `managed-disks {CommandName} key list`");
            if (parse.GetValue(json)) return ToJson(Describe(info));
            var lines = new List<string>
            {
                $"key             {info.Name}",
                $"key store       {store.Name}",
                $"state           {KeyStoreCommands.StateName(info.State)}",
                $"bits            {info.Bits}",
                $"latest version  {info.LatestVersion}",
                $"not before      {KeyStoreCommands.Date(info.NotBefore)}",
                $"expires         {KeyStoreCommands.Date(info.Expires)}",
            };
            if (info.DeletedOn is not null)
                lines.Add($"deleted         {KeyStoreCommands.Date(info.DeletedOn)} (recoverable until {KeyStoreCommands.Date(info.PurgeAfter)})");
            lines.AddRange(info.Versions.Select(v => $"version         {v.Version}  created {KeyStoreCommands.Date(v.Created)}"));
            lines.AddRange(info.Grants.Count == 0
                ? ["grants          none"]
                : info.Grants.Select(g => $"grant           {g.Key}: {KeyOperationNames.Format(g.Value)}"));
            return string.Join('\n', lines);
        }));
        return command;
    }

    public Command Grant(string description)
    {
        var key = new Option<string>("--key") { Description = "The key's name", Required = true };
        var identity = new Option<string>("--identity") { Description = "Who may use the key, e.g. an encryption set's identity (managed-disks set show)", Required = true };
        var ops = new Option<string>("--ops") { Description = $"Comma-separated operations: {KeyOperationNames.Valid}", Required = true };
        var command = new Command("grant", description) { key, identity, ops };
        command.SetAction(parse =>
        {
            if (!KeyOperationNames.TryParse(parse.GetValue(ops)!, out var operations, out string? error))
                return KeyStoreCommands.Fail($"--ops: {error}");
            string keyName = parse.GetValue(key)!, who = parse.GetValue(identity)!;
            string detail = $"identity={who} ops={KeyOperationNames.Format(operations)}";
            return RunChange(parse, "grant", keyName, store =>
            {
                store.Grant(keyName, who, operations);
                return new KeyStoreOutcome($"granted '{who}' {KeyOperationNames.Format(operations)} on key '{keyName}'", Detail: detail);
            }, detail);
        });
        return command;
    }

    public Command Revoke()
    {
        var key = new Option<string>("--key") { Description = "The key's name", Required = true };
        var identity = new Option<string>("--identity") { Description = "The identity whose grant is removed", Required = true };
        var command = new Command("revoke", "Remove an identity's grant on a key") { key, identity };
        command.SetAction(parse =>
        {
            string keyName = parse.GetValue(key)!, who = parse.GetValue(identity)!;
            return RunChange(parse, "revoke", keyName, store =>
            {
                store.Revoke(keyName, who);
                return new KeyStoreOutcome($"revoked the grant of '{who}' on key '{keyName}'; at its next key poll the daemon starts the revoke_grace " +
                                           "of the disks it serves with this key, and no disk can be opened or created with it", Detail: $"identity={who}");
            }, $"identity={who}");
        });
        return command;
    }

    // ---- plumbing ----

    /// <summary>Opens the store, makes one change and audits it: ok, denied or the error.</summary>
    public int RunChange(ParseResult parse, string operation, string keyName, Func<TStore, KeyStoreOutcome> change, string? detail = null)
    {
        if (!TryFindStore(parse, out var settings, out var found, out int exitCode)) return exitCode;
        var record = new AuditRecord("admin:" + Environment.UserName, operation, "ok", found.Name, keyName, Detail: detail);
        KeyStoreOutcome outcome;
        try
        {
            using var store = Open(found);
            outcome = change(store);
        }
        catch (Exception e) when (IsStoreProblem(e))
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

    private int RunRead(ParseResult parse, Func<TStore, string> read)
    {
        if (!TryFindStore(parse, out _, out var found, out int exitCode)) return exitCode;
        try
        {
            using var store = Open(found);
            Console.WriteLine(read(store));
            return 0;
        }
        catch (Exception e) when (IsStoreProblem(e))
        {
            return KeyStoreCommands.Fail(e.Message);
        }
    }

    private static bool IsStoreProblem(Exception e) => e is KeyStoreException or Pkcs11Problem or IOException or UnauthorizedAccessException;

    private bool TryFindStore(ParseResult parse, out DaemonSettings settings, out KeyStoreSettings store, out int exitCode)
    {
        settings = null!;
        store = null!;
        string? configPath = parse.GetValue(Config);
        if (CommandSettings.Load(configPath) is not { } loaded)
        {
            exitCode = 2;
            return false;
        }
        settings = loaded;

        var found = Find(settings, parse.GetValue(Store), out string error);
        if (found is null)
        {
            exitCode = KeyStoreCommands.Fail(error);
            return false;
        }
        if (found.Type != StoreType)
        {
            exitCode = KeyStoreCommands.Fail($"key store '{found.Name}' is of type '{found.Type}'; `{CommandName}` administers {StoreType} key stores only{WrongTypeHint}");
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

    /// <summary>The passphrase bytes as given, without the trailing newline an editor or echo adds.</summary>
    private static byte[] ReadPassphrase(string path, bool refuseEmpty)
    {
        byte[] bytes = KeyStoreCommands.ReadInput(path, "--passphrase-file");
        byte[] passphrase = bytes[..bytes.AsSpan().TrimEnd("\r\n"u8).Length];
        CryptographicOperations.ZeroMemory(bytes);
        if (refuseEmpty && passphrase.Length == 0)
            throw new KeyStoreException($"--passphrase-file: {Path.GetFullPath(path)} is empty; put the PEM's passphrase in it");
        return passphrase;
    }

    private JsonObject Describe(KeyInfo k)
    {
        var json = new JsonObject
        {
            ["name"] = k.Name,
            ["state"] = KeyStoreCommands.StateName(k.State),
            ["bits"] = k.Bits,
            ["latest_version"] = k.LatestVersion,
            ["versions"] = new JsonArray(k.Versions.Select(v => (JsonNode)new JsonObject
            {
                ["version"] = v.Version,
                ["created"] = v.Created.ToString("O", CultureInfo.InvariantCulture),
            }).ToArray()),
            ["not_before"] = k.NotBefore?.ToString("O", CultureInfo.InvariantCulture),
            ["expires"] = k.Expires?.ToString("O", CultureInfo.InvariantCulture),
        };
        if (DescribesDeletion)
        {
            json["deleted_on"] = k.DeletedOn?.ToString("O", CultureInfo.InvariantCulture);
            json["purge_after"] = k.PurgeAfter?.ToString("O", CultureInfo.InvariantCulture);
        }
        json["grants"] = new JsonObject(k.Grants.OrderBy(g => g.Key, StringComparer.Ordinal).Select(g =>
            KeyValuePair.Create(g.Key, (JsonNode?)new JsonArray(KeyOperationNames.ToNames(g.Value).Select(n => (JsonNode)n).ToArray()))));
        return json;
    }

    private static string ToJson(JsonNode node) => node.ToJsonString(new JsonSerializerOptions
    {
        WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    });

    private static string Grants(KeyInfo k) =>
        k.Grants.Count == 0 ? "-" : string.Join(" ", k.Grants.OrderBy(g => g.Key, StringComparer.Ordinal).Select(g => $"{g.Key}={KeyOperationNames.Format(g.Value)}"));
}
