import RulesParser
import Yams

/// The parts of the service's configuration file that `validate --config` uses: the
/// administrator-defined variables (so rules that watch them get no R014 and are type checked)
/// and the bundled event script directory. Other keys are left to the service.
public struct ValidationConfiguration: Sendable {
    public var variables: [ResourceVariable]
    public var eventScriptDirectory: String?

    /// A configuration that cannot be used: where and why.
    public struct Problem: Error, Sendable, CustomStringConvertible {
        public var file: String
        public var line: Int
        public var column: Int
        public var message: String

        public var description: String { "\(file):\(line):\(column): error: \(message)" }
    }

    public static func load(_ path: String, fileSystem: any FileSystem = LocalFileSystem()) throws(Problem) -> Self {
        let bytes: [UInt8]
        do {
            bytes = try fileSystem.read(path, limit: 16 << 20)
        } catch {
            throw Problem(file: path, line: 1, column: 1, message: "cannot read the configuration: \(error)")
        }
        return try parse(String(decoding: bytes, as: UTF8.self), file: path)
    }

    public static func parse(_ text: String, file: String) throws(Problem) -> Self {
        func problem(_ node: Node?, _ message: String) -> Problem {
            Problem(file: file, line: node?.mark?.line ?? 1, column: node?.mark?.column ?? 1, message: message)
        }
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw Problem(file: file, line: 1, column: 1, message: "the configuration is not YAML: \(error)")
        } catch {
            throw Problem(file: file, line: 1, column: 1, message: "the configuration is not YAML: \(error)")
        }
        guard let root else { return ValidationConfiguration(variables: [], eventScriptDirectory: nil) }
        guard let top = root.mapping else { throw problem(root, "the configuration must be a mapping of keys") }
        var configuration = ValidationConfiguration(variables: [], eventScriptDirectory: nil)
        if let scripts = top["event_scripts"] {
            guard let path = scripts.string, path.hasPrefix("/") else {
                throw problem(scripts, "event_scripts: expected an absolute directory path")
            }
            configuration.eventScriptDirectory = path
        }
        guard let variables = top["variables"] else { return configuration }
        guard let list = variables.sequence else { throw problem(variables, "variables: expected a list") }
        for entry in list {
            guard let fields = entry.mapping else { throw problem(entry, "variables: each entry must be a mapping") }
            guard let name = fields["name"]?.string, !name.isEmpty, !name.contains(" ") else {
                throw problem(fields["name"] ?? entry, "variables: each entry needs a name without blanks")
            }
            let kind: ResourceVariable.Kind
            let parser = fields["parser"]?.string ?? "number"
            switch parser {
            case "number": kind = .scalar(.number)
            case "string": kind = .scalar(.string)
            case "db2-hadr": kind = VariableCatalogue.builtIn["HAMN.DB2.HADR"]!.kind
            case "fields":
                if let declared = fields["fields"] {
                    guard let map = declared.mapping else {
                        throw problem(declared, "variables: fields: expected a mapping of field name to number or string")
                    }
                    var specs: [ResourceVariable.Field] = []
                    for (key, value) in map {
                        guard let fieldName = key.string, let type = value.string.flatMap(ResourceVariable.ValueType.init)
                        else {
                            throw problem(value, "variables: fields: each field is number or string")
                        }
                        specs.append(.init(fieldName, type))
                    }
                    kind = .structured(specs)
                } else {
                    kind = .dynamic
                }
            default:
                throw problem(fields["parser"], "variables: parser \(parser.quotedForMessage()) is not one of number, string, fields, db2-hadr")
            }
            var elements = ["NodeNum"]
            if let instance = fields["instance"] {
                guard let names = instance.sequence?.compactMap(\.string), !names.isEmpty else {
                    throw problem(instance, "variables: instance: expected a list of element names")
                }
                elements = names
            }
            configuration.variables.append(
                ResourceVariable(name: name, kind: kind, instanceElements: elements, summary: "configured"))
        }
        return configuration
    }
}
