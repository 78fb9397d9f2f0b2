using System.CommandLine;
using ManagedDisks.Daemon.Configuration;

namespace ManagedDisks.Daemon.Commands;

/// <summary>
/// <c>managed-disks config show [--config PATH] [--json]</c>: the configuration the daemon would run
/// with, every key with its default, paths absolute, secrets redacted. Exits 2, listing every
/// problem with its line, when the configuration is invalid, as <c>serve</c> does.
/// </summary>
internal static class ConfigShowCommand
{
    public static Command Build(Option<string?> configOption)
    {
        var json = new Option<bool>("--json") { Description = "Print JSON for scripts" };
        var show = new Command("show", "Print the effective configuration: every key with its default, paths absolute, secrets redacted") { json };
        show.SetAction(parse => Run(parse.GetValue(configOption), parse.GetValue(json)));
        return new Command("config", "Check and print the configuration") { show };
    }

    private static int Run(string? configPath, bool json)
    {
        if (CommandSettings.Load(configPath) is not { } settings) return 2;
        var effective = EffectiveConfiguration.From(settings);
        Console.Out.Write(json ? effective.ToJson() : effective.ToToml());
        return 0;
    }
}
