using System.CommandLine;
using System.Globalization;
using ManagedDisks.Daemon.Configuration;
using ManagedDisks.Keys.Vault;
using static ManagedDisks.Daemon.Commands.KeyStoreCommands;

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
    public static Command Build(Option<string?> configOption)
    {
        var store = new Option<string?>("--store", "-s")
        {
            Description = "The [[key_store]] to administer; optional when the configuration declares exactly one",
            Recursive = true,
        };
        var k = new KeyStoreCommands<SoftwareVault>("vault", "software", configOption, store, "The key's name",
            s => SoftwareVault.Open(s.Name, s.Path, s.MasterKeyFile), FindStore, DescribesDeletion: true);

        var key = new Command("key", "Create, import, rotate, disable, delete and list keys")
        {
            k.Create("Generate a new RSA key in the vault", "generated"),
            k.Import("Import an RSA private key from PEM: a new key, or a new version of an existing key", refuseEmptyPassphrase: true),
            k.Simple("rotate", "Add a new version generated in the vault; it becomes the latest", "key.rotate", Rotate),
            k.Simple("disable", "Disable a key: no identity may wrap or unwrap with it", "key.disable", Disable),
            k.Simple("enable", "Enable a disabled key", "key.enable", Enable),
            k.Simple("delete", "Soft-delete a key: recoverable until the vault's retention period ends", "key.delete", Delete),
            k.Simple("recover", "Recover a soft-deleted key", "key.recover", Recover),
            k.Simple("purge", "Remove a deleted key for good (refused while purge protection is on)", "key.purge", Purge),
            SetExpiry(k), k.List("List the keys, deleted ones included"), k.Show("Show a key: state, versions, dates and grants"),
        };
        return new Command("vault", "Administer a software key store (works whether or not the daemon runs)")
        {
            store, key, k.Grant("Let an identity use a key (replaces that identity's operations on the key)"), k.Revoke(),
        };
    }

    /// <summary>The --store named, or the only [[key_store]] of any type (its type is checked by the caller).</summary>
    private static KeyStoreSettings? FindStore(DaemonSettings settings, string? wanted, out string error)
    {
        var stores = settings.KeyStores;
        string declared = stores.Count == 0 ? "" : $"it declares: {string.Join(", ", stores.Select(s => s.Name))}";
        var found = wanted is null ? (stores.Count == 1 ? stores[0] : null) : stores.FirstOrDefault(s => s.Name == wanted);
        error = found is not null ? "" : stores.Count == 0
            ? $"{settings.Source} declares no [[key_store]]; add one (see disks.toml.example), e.g.\n  [[key_store]]\n  name = \"vault1\"\n  type = \"software\""
            : wanted is null
                ? $"{settings.Source} declares several key stores; choose one with --store NAME ({declared})"
                : $"no key store named '{wanted}' in {settings.Source}; {declared}";
        return found;
    }

    private static KeyStoreOutcome Rotate(SoftwareVault vault, string name)
    {
        var info = vault.RotateKey(name);
        return new KeyStoreOutcome($"rotated key '{name}': version {info.LatestVersion} (RSA-{info.Bits}) is now the latest of {info.Versions.Count}; " +
                                   "disks in encryption sets with auto_rotate re-wrap their DEK at the next rotation check", info.LatestVersion, $"RSA-{info.Bits} generated");
    }

    private static KeyStoreOutcome Disable(SoftwareVault vault, string name)
    {
        vault.DisableKey(name);
        return new KeyStoreOutcome($"disabled key '{name}': no identity may wrap or unwrap with it; the daemon acts on this at its next key poll");
    }

    private static KeyStoreOutcome Enable(SoftwareVault vault, string name)
    {
        var info = vault.EnableKey(name);
        return new KeyStoreOutcome($"enabled key '{name}' (state now: {StateName(info.State)})");
    }

    private static KeyStoreOutcome Delete(SoftwareVault vault, string name)
    {
        var info = vault.DeleteKey(name);
        return new KeyStoreOutcome($"deleted key '{name}': recoverable with `key recover {name}` until {Date(info.PurgeAfter)}");
    }

    private static KeyStoreOutcome Recover(SoftwareVault vault, string name)
    {
        var info = vault.RecoverKey(name);
        return new KeyStoreOutcome($"recovered key '{name}' (state now: {StateName(info.State)})");
    }

    private static KeyStoreOutcome Purge(SoftwareVault vault, string name)
    {
        vault.PurgeKey(name);
        return new KeyStoreOutcome($"purged key '{name}' and its private keys; disks wrapped only by it can no longer be opened");
    }

    private static Command SetExpiry(KeyStoreCommands<SoftwareVault> k)
    {
        var name = k.KeyName();
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
            return k.RunChange(parse, "key.set-expiry", parse.GetValue(name)!, vault =>
            {
                var info = vault.SetValidity(parse.GetValue(name)!, notBeforeChange, expiresChange);
                return new KeyStoreOutcome($"key '{info.Name}': not before {Date(info.NotBefore)}, expires {Date(info.Expires)} (state now: {StateName(info.State)})",
                    Detail: $"not_before={Date(info.NotBefore)} expires={Date(info.Expires)}");
            });
        });
        return command;
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
}
