# bash completion for lmmsctl(1): commands, options, and the module and
# method names of the running daemon (lmmsctl modules/ops --json), asked of
# the socket given on the line with -s, if any, and given two seconds.

_lmmsctl_query() { # KEY COMMAND: the values of "KEY": "..." in lmmsctl COMMAND --json
	local ctl=$1 key=$2 cmd=$3
	shift 3
	"$ctl" "$@" --timeout 2000 "$cmd" --json 2>/dev/null |
		sed -n 's/^ *"'"$key"'": "\([^"]*\)",\{0,1\}$/\1/p'
}

_lmmsctl() {
	local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
	local ctl=${COMP_WORDS[0]} cmd= nargs=0 i w
	local -a sock=()
	local commands="ping call modules ops stats config load unload invalidate reload trim top monitor"
	local globals="-s --socket -j --json -t --timeout -h --help -V --version"

	# Find the command and what came before it; count its arguments.
	for ((i = 1; i < COMP_CWORD; i++)); do
		w=${COMP_WORDS[i]}
		if [[ -z $cmd ]]; then
			case $w in
			-s | --socket) sock=(-s "${COMP_WORDS[i + 1]}"); ((i++)) ;;
			--socket=*) sock=(-s "${w#--socket=}") ;;
			-t | --timeout) ((i++)) ;;
			-*) ;;
			*) cmd=$w ;;
			esac
		elif [[ $w != -* ]]; then
			((nargs++))
		fi
	done

	case $prev in
	-s | --socket | -o | --output)
		COMPREPLY=($(compgen -f -- "$cur"))
		return
		;;
	-t | --timeout | -i | --interval | -n | --count)
		COMPREPLY=()
		return
		;;
	esac

	if [[ -z $cmd ]]; then
		if [[ $cur == -* ]]; then
			COMPREPLY=($(compgen -W "$globals" -- "$cur"))
		else
			COMPREPLY=($(compgen -W "$commands" -- "$cur"))
		fi
		return
	fi

	local words= opts="--json"
	case $cmd in
	call)
		if ((nargs == 0)); then
			# methods seen so far, and "module." for every module
			words="lmms.ping lmms.stats lmms.modules lmms.ops lmms.config lmms.metrics"
			words+=" lmms.load lmms.unload lmms.invalidate lmms.reload lmms.trim"
			words+=" $(_lmmsctl_query "$ctl" method ops "${sock[@]}")"
			words+=" $(_lmmsctl_query "$ctl" name modules "${sock[@]}" | sed 's/$/./')"
			COMPREPLY=($(compgen -W "$words" -- "$cur"))
			# a bare "module." is to be continued
			if [[ ${#COMPREPLY[@]} == 1 && ${COMPREPLY[0]} == *. ]]; then
				compopt -o nospace 2>/dev/null
			fi
			return
		fi
		COMPREPLY=()
		return
		;;
	load | unload)
		((nargs == 0)) && words=$(_lmmsctl_query "$ctl" name modules "${sock[@]}")
		[[ $cmd == unload ]] && opts+=" --now"
		;;
	invalidate)
		((nargs == 0)) && words="$(_lmmsctl_query "$ctl" name modules "${sock[@]}")
			$(_lmmsctl_query "$ctl" method ops "${sock[@]}")"
		;;
	stats) opts+=" --prometheus --output" ;;
	top) opts="--once --interval -n" ;;
	monitor) opts+=" -n" ;;
	esac
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "$opts" -- "$cur"))
	else
		COMPREPLY=($(compgen -W "$words" -- "$cur"))
	fi
}

complete -F _lmmsctl lmmsctl
