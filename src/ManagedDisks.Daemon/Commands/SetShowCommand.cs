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
        return new Command("set", "Inspect and rotate encryption sets") { show, SetRotateCommand.Build(configOption) };
    }

    private static int Run(string? configPath, string name, bool json)
    {
        if (CommandSettings.Load(configPath) is not { } settings) return 2;
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
        var status = SetKeyStatus.Read(settings, set);
        if (status.Error is null)
        {
            document["key_state"] = status.State!.Value.ToString().ToLowerInvariant();
            document["effective_key_version"] = set.KeyVersion ?? status.LatestVersion;
            document["granted_operations"] = status.Granted.ToString();
            document["grant_missing"] = status.GrantMissing ? status.GrantCommand(set) : null;
        }
        else
        {
            document["key_state"] = "unreachable";
            document["key_error"] = status.Error;
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
