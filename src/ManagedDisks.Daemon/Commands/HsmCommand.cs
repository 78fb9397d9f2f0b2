using System.CommandLine;
using ManagedDisks.Daemon.Configuration;
using ManagedDisks.Daemon.Hosting;
using ManagedDisks.Keys.Pkcs11;
using static ManagedDisks.Daemon.Commands.KeyStoreCommands;

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
    public static Command Build(Option<string?> configOption)
    {
        var store = new Option<string?>("--store", "-s")
        {
            Description = "The type = \"pkcs11\" [[key_store]] to administer; optional when the configuration declares exactly one",
            Recursive = true,
        };
        var k = new KeyStoreCommands<Pkcs11Store>("hsm", Pkcs11Store.TypeName, configOption, store, "The key's name (CKA_LABEL in the token)",
            s => Pkcs11Store.Open(s.Name, KeyStoreFactory.Pkcs11Options(s)), FindStore,
            WrongTypeHint: " (use `managed-disks vault` for software ones)");
        var key = new Command("key", "Create, import, rotate, disable and list keys in the HSM token")
        {
            k.Create("Generate an RSA key pair in the token (C_GenerateKeyPair; sensitive, not extractable)", "generated in the token"),
            k.Import("Import an RSA private key into the token (C_CreateObject; sensitive): a new key, or a new version", refuseEmptyPassphrase: false),
            k.Simple("rotate", "Generate a new version in the token (the next CKA_ID); it becomes the latest", "key.rotate", Rotate),
            k.Simple("disable", "Set CKA_DECRYPT false on every version: the token refuses to unwrap with the key", "key.disable", Disable),
            k.Simple("enable", "Set CKA_DECRYPT true on every version", "key.enable", Enable),
            k.List("List the keys in the token (RSA private keys with a CKA_ID, by label)"),
            k.Show("Show a key: state, versions (CKA_IDs), dates and grants"),
        };
        return new Command("hsm", "Administer a PKCS#11 HSM key store (works whether or not the daemon runs)")
        {
            store, key, k.Grant("Let an identity use a key (kept in the store's grants file; replaces that identity's operations)"), k.Revoke(),
        };
    }

    /// <summary>The --store named (of any type: the caller checks), or the only type = "pkcs11" [[key_store]].</summary>
    private static KeyStoreSettings? FindStore(DaemonSettings settings, string? wanted, out string error)
    {
        var stores = settings.KeyStores.Where(s => s.Type == Pkcs11Store.TypeName).ToList();
        var found = wanted is null ? (stores.Count == 1 ? stores[0] : null) : settings.KeyStores.FirstOrDefault(s => s.Name == wanted);
        string declared = $"its pkcs11 stores: {(stores.Count == 0 ? "none" : string.Join(", ", stores.Select(s => s.Name)))}";
        error = found is not null ? "" : stores.Count == 0
            ? $"{settings.Source} declares no [[key_store]] with type = \"pkcs11\"; add one (see disks.toml.example and docs/PKCS11.md)"
            : wanted is null
                ? $"{settings.Source} declares several pkcs11 key stores; choose one with --store NAME ({declared})"
                : $"no key store named '{wanted}' in {settings.Source}; {declared}";
        return found;
    }

    private static KeyStoreOutcome Rotate(Pkcs11Store hsm, string name)
    {
        var info = hsm.CreateKey(name, rotate: true);
        return new KeyStoreOutcome($"rotated key '{name}': version {info.LatestVersion} (RSA-{info.Bits}) is now the latest of {info.Versions.Count}",
            info.LatestVersion, $"RSA-{info.Bits} generated in the token");
    }

    private static KeyStoreOutcome Disable(Pkcs11Store hsm, string name)
    {
        hsm.SetEnabled(name, false);
        return new KeyStoreOutcome($"disabled key '{name}' (CKA_DECRYPT false): the token refuses to unwrap with it; the daemon acts on this at its next key poll");
    }

    private static KeyStoreOutcome Enable(Pkcs11Store hsm, string name)
    {
        var info = hsm.SetEnabled(name, true);
        return new KeyStoreOutcome($"enabled key '{name}' (state now: {StateName(info.State)})");
    }
}
