using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using ManagedDisks.Daemon.Hosting;
using ManagedDisks.Keys;

namespace ManagedDisks.Daemon.Commands;

/// <summary><c>managed-disks set show NAME [--json]</c>: an encryption set and the identity the vault must grant.</summary>
internal static class SetShowCommand
{
    public static Command Build(Option<string?> configOption)
    {
        var name = new Argument<string>("NAME") { Description = "The encryption set's name" };
        var json = new Option<bool>("--json") { Description = "Print JSON for scripts" };
        var show = new Command("show", "Print an encryption set, its identity, its key's state and the grant it holds") { name, json };
        show.SetAction(parse => Run(parse.GetValue(configOption), parse.GetValue(name)!, parse.GetValue(json)));
        return new Command("set", "Inspect encryption sets") { show };
    }

    private static int Run(string? configPath, string name, bool json)
    {
        if (AuditCommand.Settings(configPath) is not { } settings) return 2;
        var set = settings.EncryptionSets.FirstOrDefault(s => s.Name == name);
        if (set is null)
        {
            Console.Error.WriteLine($"managed-disks: no encryption set named '{name}' in {settings.Source}; it declares: {string.Join(", ", settings.EncryptionSets.Select(s => s.Name))}");
            return 1;
        }

        var document = new JsonObject
        {
            ["name"] = set.Name,
            ["identity"] = set.Identity,
            ["key_store"] = set.KeyStore,
            ["key"] = set.Key,
            ["key_version"] = set.KeyVersion,
            ["auto_rotate"] = set.AutoRotate,
            ["disks"] = new JsonArray(settings.Disks.Where(d => d.EncryptionSet == set.Name).Select(d => (JsonNode)d.Name).ToArray()),
        };
        try
        {
            using var store = KeyStoreFactory.Open(settings.KeyStores.First(k => k.Name == set.KeyStore));
            var key = store.GetKey(set.Key);
            document["key_state"] = (key?.State ?? KeyState.NotFound).ToString().ToLowerInvariant();
            document["effective_key_version"] = set.KeyVersion ?? key?.LatestVersion;
            var granted = key is not null && key.Grants.TryGetValue(set.Identity, out var ops) ? ops : KeyOperations.None;
            document["granted_operations"] = granted.ToString();
            document["grant_missing"] = (granted & (KeyOperations.WrapKey | KeyOperations.UnwrapKey)) != (KeyOperations.WrapKey | KeyOperations.UnwrapKey)
                ? $"managed-disks {store.AdminCommand} --store {set.KeyStore} grant --key {set.Key} --identity {set.Identity} --ops wrapKey,unwrapKey"
                : null;
        }
        catch (KeyStoreException e)
        {
            document["key_state"] = "unreachable";
            document["key_error"] = e.Message;
        }

        if (json)
        {
            Console.WriteLine(document.ToJsonString(new JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }));
            return 0;
        }
        foreach (var (field, value) in document)
            if (value is not null) Console.WriteLine($"{field,-22} {(value is JsonArray a ? string.Join(", ", a) : value.ToString())}");
        return 0;
    }
}
